package cloudhsm

import (
	"slices"
	"strings"
)

func isGov(region string) bool { return strings.HasPrefix(region, "us-gov-") }

var knownRegions = map[string]bool{}

// regionList holds the known regions in the order written below.
var regionList []string

func init() {
	for _, r := range strings.Fields(`us-east-1 us-east-2 us-west-1 us-west-2 af-south-1 ap-east-1 ap-east-2
		ap-south-1 ap-south-2 ap-southeast-1 ap-southeast-2 ap-southeast-3 ap-southeast-4 ap-southeast-5 ap-southeast-6 ap-southeast-7
		ap-northeast-1 ap-northeast-2 ap-northeast-3 ca-central-1 ca-west-1 eu-central-1 eu-central-2 eu-west-1
		eu-west-2 eu-west-3 eu-south-1 eu-south-2 eu-north-1 il-central-1 me-south-1 me-central-1 mx-central-1
		sa-east-1 us-gov-east-1 us-gov-west-1`) {
		knownRegions[r] = true
		regionList = append(regionList, r)
	}
}

// CopyTargets lists the regions a backup of region can be copied to: every
// other known region of its partition.
func CopyTargets(region string) []string {
	var out []string
	for _, r := range regionList {
		if r != region && Partition(r) == Partition(region) {
			out = append(out, r)
		}
	}
	return out
}

// KnownRegion reports whether region is an AWS region in the aws and
// aws-us-gov partitions.
func KnownRegion(region string) bool { return knownRegions[region] }

// Partition returns the ARN partition of region: aws-us-gov for the
// GovCloud (US) regions, aws otherwise.
func Partition(region string) string {
	if strings.HasPrefix(region, "us-gov-") {
		return "aws-us-gov"
	}
	return "aws"
}

// Regions lists every region the server knows, in a stable order.
func Regions() []string { return slices.Clone(regionList) }
