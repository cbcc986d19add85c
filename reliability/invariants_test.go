package reliability

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
)

// TestHsmAddressesUniquePerSubnet is the deterministic form of an invariant
// the crash and soak tests check under load: an ENI address belongs to one
// network interface in its subnet, whichever cluster the HSM is in. Two
// clusters of one account may use the same subnets (a learned subnet always
// means the same VPC, AZ and CIDR).
func TestHsmAddressesUniquePerSubnet(t *testing.T) {
	srv, err := cloudhsmlocal.New()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	c := sdkClient(srv.URL, "444455556666", "us-east-1", nil)
	subnet := newSubnets(1)
	var ids []string
	for range 2 {
		out, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnet})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, aws.ToString(out.Cluster.ClusterId))
	}
	srv.Advance(time.Second) // both UNINITIALIZED
	d, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"clusterIds": {ids[0]}}})
	if err != nil || len(d.Clusters) != 1 {
		t.Fatalf("DescribeClusters: %v", err)
	}
	var az string
	for k := range d.Clusters[0].SubnetMapping {
		az = k
	}

	first, err := c.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: aws.String(ids[0]), AvailabilityZone: aws.String(az)})
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: aws.String(ids[1]), AvailabilityZone: aws.String(az)})
	if err != nil {
		t.Fatal(err)
	}
	a, b := first.Hsm, second.Hsm
	t.Logf("HSM %s (cluster %s): %s %s; HSM %s (cluster %s): %s %s",
		aws.ToString(a.HsmId), ids[0], aws.ToString(a.SubnetId), aws.ToString(a.EniIp),
		aws.ToString(b.HsmId), ids[1], aws.ToString(b.SubnetId), aws.ToString(b.EniIp))
	if aws.ToString(a.SubnetId) == aws.ToString(b.SubnetId) && aws.ToString(a.EniIp) == aws.ToString(b.EniIp) {
		t.Errorf("two HSMs in subnet %s were given the same address %s", aws.ToString(a.SubnetId), aws.ToString(a.EniIp))
	}

	// Asking for the address the first HSM holds, in another cluster of
	// the same subnet, must be refused as in use.
	srv.Advance(time.Second)
	third, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnet})
	if err != nil {
		t.Fatal(err)
	}
	srv.Advance(time.Second)
	_, err = c.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{
		ClusterId: third.Cluster.ClusterId, AvailabilityZone: aws.String(az), IpAddress: a.EniIp,
	})
	if code := apiCode(err); code != "CloudHsmInvalidRequestException" {
		t.Errorf("CreateHsm with IpAddress %s, held by HSM %s in the same subnet: got %v, want CloudHsmInvalidRequestException (address in use)",
			aws.ToString(a.EniIp), aws.ToString(a.HsmId), err)
	}
}
