package cloudhsmlocal_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"
	"github.com/aws/smithy-go"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
)

// Constraint texts of the service model, as AWS words them.
const (
	notNull          = "Member must not be null"
	clusterIDPattern = "Member must satisfy regular expression pattern: cluster-[2-7a-zA-Z]{11,16}"
	subnetIDPattern  = "Member must satisfy regular expression pattern: subnet-[0-9a-fA-F]{8,17}"
	resourcePattern  = "Member must satisfy regular expression pattern: (?:cluster|backup)-[2-7a-zA-Z]{11,16}"
	tagPattern       = `Member must satisfy regular expression pattern: ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$`
	hsmTypePattern   = "Member must satisfy regular expression pattern: ((p|)hsm[0-9][a-z.]*\\.[a-zA-Z]+)"
	azPattern        = `Member must satisfy regular expression pattern: [a-z]{2}(-(gov))?-(east|west|north|south|central){1,2}-\d[a-z]`
	ipPattern        = `Member must satisfy regular expression pattern: \d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}`
)

func lenMax(n int) string { return "Member must have length less than or equal to " + strconv.Itoa(n) }
func lenMin(n int) string {
	return "Member must have length greater than or equal to " + strconv.Itoa(n)
}
func valMax(n int) string { return "Member must have value less than or equal to " + strconv.Itoa(n) }
func valMin(n int) string {
	return "Member must have value greater than or equal to " + strconv.Itoa(n)
}

// violation renders one item of a validation message. value is the raw
// rendering ("null" for a missing member, else quoted by the caller).
func violation(value, path, constraint string) string {
	return "Value " + value + " at '" + path + "' failed to satisfy constraint: " + constraint
}

// longViolation matches an item whose rendered value is too long to spell
// out: it must start with "Value '" + valuePrefix and end with the path and
// constraint.
type longViolation struct{ valuePrefix, path, constraint string }

func (l longViolation) matches(item string) bool {
	return strings.HasPrefix(item, "Value '"+l.valuePrefix) &&
		strings.HasSuffix(item, "' at '"+l.path+"' failed to satisfy constraint: "+l.constraint)
}

// checkValidationMessage asserts msg is "N validation error(s) detected: "
// followed by exactly the wanted items joined with "; " (any order). Items
// are strings (exact) or longViolation.
func checkValidationMessage(t *testing.T, msg string, want ...any) {
	t.Helper()
	head := fmt.Sprintf("%d validation errors detected: ", len(want))
	if len(want) == 1 {
		head = "1 validation error detected: "
	}
	rest, ok := strings.CutPrefix(msg, head)
	if !ok {
		t.Fatalf("message %q does not start with %q", msg, head)
	}
	items := strings.Split(rest, "; ")
	if len(items) != len(want) {
		t.Fatalf("message has %d items, want %d: %q", len(items), len(want), msg)
	}
	used := make([]bool, len(items))
next:
	for _, w := range want {
		for i, it := range items {
			if used[i] {
				continue
			}
			var match bool
			switch w := w.(type) {
			case string:
				match = it == w
			case longViolation:
				match = w.matches(it)
			}
			if match {
				used[i] = true
				continue next
			}
		}
		t.Errorf("message lacks item %q\nfull message: %q", w, msg)
	}
}

func quoted(s string) string { return "'" + s + "'" }

func jsonStrings(ss []string) string {
	return `["` + strings.Join(ss, `","`) + `"]`
}

func jsonTags(n int, prefix string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"Key":"%s%d","Value":"v"}`, prefix, i)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// TestValidationMessages sends raw requests that break the model's
// constraints and checks the CloudHsmInvalidRequestException message.
func TestValidationMessages(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	sn := subnets(12)
	good := sn[0]
	long129 := strings.Repeat("k", 129)
	long257 := strings.Repeat("v", 257)
	filters31 := make([]string, 31)
	for i := range filters31 {
		filters31[i] = fmt.Sprintf(`"f%d":["x"]`, i)
	}
	cases := []struct {
		name, op, body string
		want           []any
	}{
		// The canonical example, checked as the full message below too.
		{"pattern clusterId", "DeleteCluster", `{"ClusterId":"abc"}`,
			[]any{violation("'abc'", "clusterId", clusterIDPattern)}},
		{"required clusterId", "DeleteCluster", `{}`,
			[]any{violation("null", "clusterId", notNull)}},
		{"required clusterId given as null", "DeleteCluster", `{"ClusterId":null}`,
			[]any{violation("null", "clusterId", notNull)}},
		{"required hsmType", "CreateCluster", `{"SubnetIds":["` + good + `"]}`,
			[]any{violation("null", "hsmType", notNull)}},
		{"required hsmType and subnetIds", "CreateCluster", `{}`,
			[]any{violation("null", "hsmType", notNull), violation("null", "subnetIds", notNull)}},
		{"enum mode", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["` + good + `"],"Mode":"FIPS140"}`,
			[]any{violation("'FIPS140'", "mode", "Member must satisfy enum value set: [FIPS, NON_FIPS]")}},
		{"enum mode is case-sensitive", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["` + good + `"],"Mode":"fips"}`,
			[]any{violation("'fips'", "mode", "Member must satisfy enum value set: [FIPS, NON_FIPS]")}},
		{"enum networkType", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["` + good + `"],"NetworkType":"IPV6"}`,
			[]any{violation("'IPV6'", "networkType", "Member must satisfy enum value set: [IPV4, DUALSTACK]")}},
		{"enum backupRetentionPolicy.type", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["` + good + `"],"BackupRetentionPolicy":{"Type":"WEEKS","Value":"12"}}`,
			[]any{violation("'WEEKS'", "backupRetentionPolicy.type", "Member must satisfy enum value set: [DAYS]")}},
		{"retention value too long", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["` + good + `"],"BackupRetentionPolicy":{"Type":"DAYS","Value":"1000"}}`,
			[]any{violation("'1000'", "backupRetentionPolicy.value", lenMax(3))}},
		{"retention value not digits", "ModifyCluster", `{"ClusterId":"cluster-abcdefghijk","BackupRetentionPolicy":{"Type":"DAYS","Value":"1y"}}`,
			[]any{violation("'1y'", "backupRetentionPolicy.value", "Member must satisfy regular expression pattern: [0-9]+")}},
		{"retention value empty", "ModifyCluster", `{"ClusterId":"cluster-abcdefghijk","BackupRetentionPolicy":{"Type":"DAYS","Value":""}}`,
			[]any{violation("''", "backupRetentionPolicy.value", lenMin(1)), violation("''", "backupRetentionPolicy.value", "Member must satisfy regular expression pattern: [0-9]+")}},
		{"hsmType pattern", "CreateCluster", `{"HsmType":"large","SubnetIds":["` + good + `"]}`,
			[]any{violation("'large'", "hsmType", hsmTypePattern)}},
		{"hsmType too long", "CreateCluster", `{"HsmType":"hsm1.` + strings.Repeat("a", 28) + `","SubnetIds":["` + good + `"]}`,
			[]any{violation(quoted("hsm1."+strings.Repeat("a", 28)), "hsmType", lenMax(32))}},
		{"pattern subnetIds.1.member", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["sub-12345678"]}`,
			[]any{violation("'sub-12345678'", "subnetIds.1.member", subnetIDPattern)}},
		{"pattern subnetIds.2.member", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["` + good + `","subnet-xyz"]}`,
			[]any{violation("'subnet-xyz'", "subnetIds.2.member", subnetIDPattern)}},
		{"pattern subnet id too long", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["subnet-0123456789abcdef01"]}`,
			[]any{violation("'subnet-0123456789abcdef01'", "subnetIds.1.member", subnetIDPattern)}},
		{"subnetIds empty", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":[]}`,
			[]any{violation("'[]'", "subnetIds", lenMin(1))}},
		{"subnetIds over 10", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":` + jsonStrings(sn[:11]) + `}`,
			[]any{longViolation{"[" + sn[0] + ", " + sn[1], "subnetIds", lenMax(10)}}},
		{"tag key over 128", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["` + good + `"],"TagList":[{"Key":"` + long129 + `","Value":"v"}]}`,
			[]any{violation(quoted(long129), "tagList.1.member.key", lenMax(128))}},
		{"tag key over 128 on TagResource", "TagResource", `{"ResourceId":"cluster-abcdefghijk","TagList":[{"Key":"ok","Value":"v"},{"Key":"` + long129 + `","Value":"v"}]}`,
			[]any{violation(quoted(long129), "tagList.2.member.key", lenMax(128))}},
		{"tag key empty", "TagResource", `{"ResourceId":"cluster-abcdefghijk","TagList":[{"Key":"","Value":"v"}]}`,
			[]any{violation("''", "tagList.1.member.key", lenMin(1))}},
		{"tag key pattern", "TagResource", `{"ResourceId":"cluster-abcdefghijk","TagList":[{"Key":"a#b","Value":"v"}]}`,
			[]any{violation("'a#b'", "tagList.1.member.key", tagPattern)}},
		{"tag value over 256", "TagResource", `{"ResourceId":"cluster-abcdefghijk","TagList":[{"Key":"k","Value":"` + long257 + `"}]}`,
			[]any{longViolation{strings.Repeat("v", 200), "tagList.1.member.value", lenMax(256)}}},
		{"tag value missing", "TagResource", `{"ResourceId":"cluster-abcdefghijk","TagList":[{"Key":"a","Value":"1"},{"Key":"b"}]}`,
			[]any{violation("null", "tagList.2.member.value", notNull)}},
		{"tagList over 50 on CreateCluster", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["` + good + `"],"TagList":` + jsonTags(51, "k") + `}`,
			[]any{longViolation{"[{Key: k0,Value: v}", "tagList", lenMax(50)}}},
		{"tagList over 50 on TagResource", "TagResource", `{"ResourceId":"cluster-abcdefghijk","TagList":` + jsonTags(51, "k") + `}`,
			[]any{longViolation{"[", "tagList", lenMax(50)}}},
		{"tagList empty", "TagResource", `{"ResourceId":"cluster-abcdefghijk","TagList":[]}`,
			[]any{violation("'[]'", "tagList", lenMin(1))}},
		{"TagResource required members", "TagResource", `{}`,
			[]any{violation("null", "resourceId", notNull), violation("null", "tagList", notNull)}},
		{"tagKeyList empty", "UntagResource", `{"ResourceId":"cluster-abcdefghijk","TagKeyList":[]}`,
			[]any{violation("'[]'", "tagKeyList", lenMin(1))}},
		{"tagKeyList over 50", "UntagResource", `{"ResourceId":"cluster-abcdefghijk","TagKeyList":` + jsonStrings(strings.Split(strings.Repeat("k,", 51)[:101], ",")) + `}`,
			[]any{longViolation{"[k, k", "tagKeyList", lenMax(50)}}},
		{"resourceId pattern", "ListTags", `{"ResourceId":"hsm-abcdefghijk"}`,
			[]any{violation("'hsm-abcdefghijk'", "resourceId", resourcePattern)}},
		{"ListTags required", "ListTags", `{"MaxResults":10}`,
			[]any{violation("null", "resourceId", notNull)}},
		{"ListTags maxResults 101", "ListTags", `{"ResourceId":"cluster-abcdefghijk","MaxResults":101}`,
			[]any{violation("'101'", "maxResults", valMax(100))}},
		{"ListTags maxResults 0", "ListTags", `{"ResourceId":"cluster-abcdefghijk","MaxResults":0}`,
			[]any{violation("'0'", "maxResults", valMin(1))}},
		{"DescribeClusters maxResults 0", "DescribeClusters", `{"MaxResults":0}`,
			[]any{violation("'0'", "maxResults", valMin(1))}},
		{"DescribeClusters maxResults -1", "DescribeClusters", `{"MaxResults":-1}`,
			[]any{violation("'-1'", "maxResults", valMin(1))}},
		{"DescribeClusters maxResults 26", "DescribeClusters", `{"MaxResults":26}`,
			[]any{violation("'26'", "maxResults", valMax(25))}},
		{"DescribeBackups maxResults 51", "DescribeBackups", `{"MaxResults":51}`,
			[]any{violation("'51'", "maxResults", valMax(50))}},
		{"DescribeBackups maxResults 0", "DescribeBackups", `{"MaxResults":0}`,
			[]any{violation("'0'", "maxResults", valMin(1))}},
		{"filters over 30 keys", "DescribeClusters", `{"Filters":{` + strings.Join(filters31, ",") + `}}`,
			[]any{longViolation{"{f0=[x], f1=[x]", "filters", lenMax(30)}}},
		{"nextToken over 256", "DescribeClusters", `{"NextToken":"` + strings.Repeat("t", 257) + `"}`,
			[]any{longViolation{strings.Repeat("t", 100), "nextToken", lenMax(256)}}},
		{"CreateHsm availabilityZone and ipAddress", "CreateHsm", `{"ClusterId":"cluster-abcdefghijk","AvailabilityZone":"us-east-1","IpAddress":"10.0.0"}`,
			[]any{violation("'us-east-1'", "availabilityZone", azPattern), violation("'10.0.0'", "ipAddress", ipPattern)}},
		{"CreateHsm required", "CreateHsm", `{}`,
			[]any{violation("null", "clusterId", notNull), violation("null", "availabilityZone", notNull)}},
		{"several violations in one CreateCluster", "CreateCluster",
			`{"HsmType":"x","SubnetIds":["bad"],"Mode":"X","NetworkType":"Y","BackupRetentionPolicy":{"Type":"HOURS","Value":"7"}}`,
			[]any{
				violation("'x'", "hsmType", hsmTypePattern),
				violation("'bad'", "subnetIds.1.member", subnetIDPattern),
				violation("'X'", "mode", "Member must satisfy enum value set: [FIPS, NON_FIPS]"),
				violation("'Y'", "networkType", "Member must satisfy enum value set: [IPV4, DUALSTACK]"),
				violation("'HOURS'", "backupRetentionPolicy.type", "Member must satisfy enum value set: [DAYS]"),
			}},
		{"several violations in ModifyCluster", "ModifyCluster", `{"ClusterId":"c-1","BackupRetentionPolicy":{"Type":"days","Value":"x"}}`,
			[]any{
				violation("'c-1'", "clusterId", clusterIDPattern),
				violation("'days'", "backupRetentionPolicy.type", "Member must satisfy enum value set: [DAYS]"),
				violation("'x'", "backupRetentionPolicy.value", "Member must satisfy regular expression pattern: [0-9]+"),
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg := wantEnvelope(t, rawCall(t, srv, tc.op, tc.body), 400, "CloudHsmInvalidRequestException")
			checkValidationMessage(t, msg, tc.want...)
		})
	}

	// The exact message of the canonical example.
	msg := wantEnvelope(t, rawCall(t, srv, "DeleteCluster", `{"ClusterId":"abc"}`), 400, "CloudHsmInvalidRequestException")
	if want := "1 validation error detected: Value 'abc' at 'clusterId' failed to satisfy constraint: Member must satisfy regular expression pattern: cluster-[2-7a-zA-Z]{11,16}"; msg != want {
		t.Errorf("message\n got %q\nwant %q", msg, want)
	}
	// Refused requests changed nothing.
	out, err := client(srv).DescribeClusters(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Clusters) != 0 {
		t.Errorf("refused CreateCluster calls created %d clusters", len(out.Clusters))
	}
}

// TestValidationFilterKeyPattern: filter keys must match [a-zA-Z0-9_-]+.
func TestValidationFilterKeyPattern(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	msg := wantEnvelope(t, rawCall(t, srv, "DescribeClusters", `{"Filters":{"cluster ids":["x"]}}`), 400, "CloudHsmInvalidRequestException")
	if !strings.HasPrefix(msg, "1 validation error detected: Value '") ||
		!strings.Contains(msg, "' at 'filters' failed to satisfy constraint: ") ||
		!strings.Contains(msg, "[a-zA-Z0-9_-]+") {
		t.Errorf("message %q", msg)
	}
}

// TestValidationThroughSDK: the same checks reach aws-sdk-go-v2 callers as a
// typed CloudHsmInvalidRequestException with the message.
func TestValidationThroughSDK(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	sn := subnets(11)
	filters := map[string][]string{}
	for i := range 31 {
		filters[fmt.Sprintf("f%02d", i)] = []string{"x"}
	}
	cases := []struct {
		name string
		call func() error
		want []any
	}{
		{"DescribeClusters MaxResults 0", func() error {
			_, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{MaxResults: aws.Int32(0)})
			return err
		}, []any{violation("'0'", "maxResults", valMin(1))}},
		{"DescribeClusters MaxResults 26", func() error {
			_, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{MaxResults: aws.Int32(26)})
			return err
		}, []any{violation("'26'", "maxResults", valMax(25))}},
		{"DescribeBackups MaxResults 51", func() error {
			_, err := c.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{MaxResults: aws.Int32(51)})
			return err
		}, []any{violation("'51'", "maxResults", valMax(50))}},
		{"ListTags MaxResults 101", func() error {
			_, err := c.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: aws.String("cluster-abcdefghijk"), MaxResults: aws.Int32(101)})
			return err
		}, []any{violation("'101'", "maxResults", valMax(100))}},
		{"DescribeClusters 31 filters", func() error {
			_, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: filters})
			return err
		}, []any{longViolation{"{f", "filters", lenMax(30)}}},
		{"CreateCluster 11 subnets", func() error {
			_, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: sn})
			return err
		}, []any{longViolation{"[" + sn[0], "subnetIds", lenMax(10)}}},
		{"CreateCluster bad Mode and NetworkType", func() error {
			_, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: sn[:1], Mode: "FAST", NetworkType: "IPV5"})
			return err
		}, []any{
			violation("'FAST'", "mode", "Member must satisfy enum value set: [FIPS, NON_FIPS]"),
			violation("'IPV5'", "networkType", "Member must satisfy enum value set: [IPV4, DUALSTACK]"),
		}},
		{"CreateCluster bad retention type", func() error {
			_, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: sn[:1],
				BackupRetentionPolicy: &types.BackupRetentionPolicy{Type: "MONTHS", Value: aws.String("3")}})
			return err
		}, []any{violation("'MONTHS'", "backupRetentionPolicy.type", "Member must satisfy enum value set: [DAYS]")}},
		{"TagResource key over 128", func() error {
			_, err := c.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: aws.String("cluster-abcdefghijk"),
				TagList: []types.Tag{{Key: aws.String(strings.Repeat("x", 129)), Value: aws.String("v")}}})
			return err
		}, []any{violation(quoted(strings.Repeat("x", 129)), "tagList.1.member.key", lenMax(128))}},
		{"DeleteCluster bad id", func() error {
			_, err := c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: aws.String("abc")})
			return err
		}, []any{violation("'abc'", "clusterId", clusterIDPattern)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var ae smithy.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("want CloudHsmInvalidRequestException, got %v", err)
			}
			var typed *types.CloudHsmInvalidRequestException
			if !errors.As(err, &typed) {
				t.Fatalf("error %T (%s) is not the typed CloudHsmInvalidRequestException", err, ae.ErrorCode())
			}
			checkValidationMessage(t, aws.ToString(typed.Message), tc.want...)
		})
	}
}

// sortedCopy returns a sorted copy of ss.
func sortedCopy(ss []string) []string {
	out := append([]string(nil), ss...)
	sort.Strings(out)
	return out
}

// A filter value that is an empty string is a value, not an absent one: it
// must not turn the filter off. clusterIds [""] names no cluster, so the
// answer is empty (as for any other unknown id); states [""] is not a
// cluster state, so it is refused like states ["NOPE"].
// (The AWS CLI sends {"clusterIds":[""]} for `--filters clusterIds=$ID`
// with an empty $ID.)
func TestEmptyStringFilterValue(t *testing.T) {
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	createCluster(t, c, 1)
	out, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"clusterIds": {""}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Clusters) != 0 {
		t.Errorf("clusterIds [\"\"] returned %d clusters, want 0", len(out.Clusters))
	}
	_, err = c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"states": {""}}})
	wantAPIError(t, err, "CloudHsmInvalidRequestException", "Invalid value '' for filter states")
	_, err = c.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{Filters: map[string][]string{"neverExpires": {""}}})
	wantAPIError(t, err, "CloudHsmInvalidRequestException", "neverExpires")
}

// A null inside a list, or as the value of a map entry, is refused with
// SerializationException naming the member that holds it: no list or map
// of the service model is sparse, and Smithy's server SDKs refuse nulls in
// non-sparse collections alike. Above all, a filter meant to narrow a
// listing must not widen it: {"clusterIds":[null]} used to list every
// cluster. A refused request changes nothing.
func TestNullInsideListOrMapIsRefused(t *testing.T) {
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl := createCluster(t, c, 1)
	id := aws.ToString(cl.ClusterId)
	tests := []struct {
		name, op, body, want string
	}{
		{"filter value element", "DescribeClusters", `{"Filters":{"clusterIds":[null]}}`,
			`Member 'Filters["clusterIds"]' holds null at index 0: a list in a request cannot contain null`},
		{"filter value element after a value", "DescribeClusters", `{"Filters":{"clusterIds":["` + id + `",null]}}`,
			`Member 'Filters["clusterIds"]' holds null at index 1`},
		{"filter value", "DescribeClusters", `{"Filters":{"bogus":null}}`,
			`Member 'Filters' holds null for key "bogus": a map in a request cannot contain null values`},
		{"backup filter value element", "DescribeBackups", `{"Filters":{"states":["READY",null]}}`,
			`Member 'Filters["states"]' holds null at index 1`},
		{"subnet id", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":[null]}`,
			`Member 'SubnetIds' holds null at index 0`},
		{"tag", "TagResource", `{"ResourceId":"` + id + `","TagList":[{"Key":"new","Value":"v"},null]}`,
			`Member 'TagList' holds null at index 1`},
		{"tag key", "UntagResource", `{"ResourceId":"` + id + `","TagKeyList":[null]}`,
			`Member 'TagKeyList' holds null at index 0`},
		{"copy tag", "CopyBackupToRegion", `{"DestinationRegion":"us-west-2","BackupId":"backup-ro5c4er4aac","TagList":[null]}`,
			`Member 'TagList' holds null at index 0`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := wantEnvelope(t, rawCall(t, srv, tc.op, tc.body), 400, "SerializationException")
			if !strings.Contains(msg, tc.want) {
				t.Errorf("message %q does not contain %q", msg, tc.want)
			}
		})
	}
	tags, err := c.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: cl.ClusterId})
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags.TagList {
		if aws.ToString(tag.Key) == "new" {
			t.Errorf("the refused TagResource added tag %q", "new")
		}
	}
}

// JSON null as the value of a member is an absent member, as AWS JSON 1.1
// servers read it (Smithy's protocol test
// AwsJson11ServersDontDeserializeNullStructureValues): the same as {}.
func TestNullMemberIsAbsent(t *testing.T) {
	srv := cloudhsmlocal.Start(t)
	createCluster(t, client(srv), 1)
	r := rawCall(t, srv, "DescribeClusters", `{"Filters":null,"NextToken":null,"MaxResults":null}`)
	if r.Status != 200 {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	var out struct{ Clusters []json.RawMessage }
	if err := json.Unmarshal(r.Body, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Clusters) != 1 {
		t.Errorf("%d clusters, want the one", len(out.Clusters))
	}
}
