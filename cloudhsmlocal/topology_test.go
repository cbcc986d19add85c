package cloudhsmlocal_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
)

// TestDeclaredTopology: with --topology, subnets mean what the file says
// (VPC, AZ, CIDRs), and subnets it does not declare are refused.
func TestDeclaredTopology(t *testing.T) {
	t.Parallel()
	const topo = `{
  "vpcs": [
    {"id": "vpc-0a1b2c3d4e5f60718", "cidr": "10.40.0.0/16"},
    {"id": "vpc-0a1b2c3d4e5f60719", "cidr": "10.50.0.0/16"}
  ],
  "subnets": [
    {"id": "subnet-0a1b2c3d4e5f60001", "vpcId": "vpc-0a1b2c3d4e5f60718", "availabilityZone": "eu-west-1a", "cidr": "10.40.1.0/24", "ipv6Cidr": "2600:1f18:40:1::/64"},
    {"id": "subnet-0a1b2c3d4e5f60002", "vpcId": "vpc-0a1b2c3d4e5f60718", "availabilityZone": "eu-west-1b", "cidr": "10.40.2.0/24", "ipv6Cidr": "2600:1f18:40:2::/64"},
    {"id": "subnet-0a1b2c3d4e5f60003", "vpcId": "vpc-0a1b2c3d4e5f60718", "availabilityZone": "eu-west-1c", "cidr": "10.40.3.0/24"},
    {"id": "subnet-0a1b2c3d4e5f60004", "vpcId": "vpc-0a1b2c3d4e5f60719", "availabilityZone": "eu-west-1a", "cidr": "10.50.1.0/24"}
  ]
}`
	path := filepath.Join(t.TempDir(), "topology.json")
	if err := os.WriteFile(path, []byte(topo), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := cloudhsmlocal.Start(t, cloudhsmlocal.WithTopology(path))
	c := clientFor(srv, cloudhsmlocal.DefaultAccount, "eu-west-1")
	create := func(network types.NetworkType, ids ...string) (*types.Cluster, error) {
		out, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: ids, NetworkType: network})
		if err != nil {
			return nil, err
		}
		return out.Cluster, nil
	}
	cl, err := create(types.NetworkTypeDualstack, "subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002")
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(cl.VpcId) != "vpc-0a1b2c3d4e5f60718" || cl.SubnetMapping["eu-west-1a"] != "subnet-0a1b2c3d4e5f60001" || cl.SubnetMapping["eu-west-1b"] != "subnet-0a1b2c3d4e5f60002" {
		t.Fatalf("declared network not used: %s %v", aws.ToString(cl.VpcId), cl.SubnetMapping)
	}
	srv.Advance(time.Second)
	h, err := c.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: cl.ClusterId, AvailabilityZone: aws.String("eu-west-1b"), IpAddress: aws.String("10.40.2.5")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(h.Hsm.EniIp) != "10.40.2.5" || aws.ToString(h.Hsm.SubnetId) != "subnet-0a1b2c3d4e5f60002" {
		t.Fatalf("HSM %+v", h.Hsm)
	}
	v6, err := netip.ParseAddr(aws.ToString(h.Hsm.EniIpV6))
	if err != nil || !netip.MustParsePrefix("2600:1f18:40:2::/64").Contains(v6) {
		t.Fatalf("EniIpV6 %q is not in the declared IPv6 CIDR", aws.ToString(h.Hsm.EniIpV6))
	}
	_, err = c.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: cl.ClusterId, AvailabilityZone: aws.String("eu-west-1a"), IpAddress: aws.String("10.40.9.5")})
	wantAPIError(t, err, "CloudHsmInvalidRequestException")

	for _, tc := range []struct {
		name    string
		network types.NetworkType
		ids     []string
	}{
		{"undeclared subnet", "", []string{"subnet-0a1b2c3d4e5f6ffff"}},
		{"two VPCs", "", []string{"subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60004"}},
		{"DUALSTACK without IPv6", types.NetworkTypeDualstack, []string{"subnet-0a1b2c3d4e5f60003"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := create(tc.network, tc.ids...)
			wantAPIError(t, err, "CloudHsmInvalidRequestException")
		})
	}
	// Declared subnets are visible only in their region.
	_, err = clientFor(srv, cloudhsmlocal.DefaultAccount, "us-east-1").CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: []string{"subnet-0a1b2c3d4e5f60001"}})
	wantAPIError(t, err, "CloudHsmInvalidRequestException", "subnet-0a1b2c3d4e5f60001")
}

// TestRealisticTiming: with AWS-like timing a new cluster stays
// CREATE_IN_PROGRESS for minutes, as a poller on AWS sees it.
func TestRealisticTiming(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t, cloudhsmlocal.WithRealisticTiming())
	c := client(srv)
	cl := createCluster(t, c, 1)
	srv.Advance(2 * time.Minute)
	if st := describe(t, c, *cl.ClusterId).State; st != types.ClusterStateCreateInProgress {
		t.Fatalf("after 2 minutes: %s, want CREATE_IN_PROGRESS", st)
	}
	srv.Advance(time.Minute)
	if st := describe(t, c, *cl.ClusterId).State; st != types.ClusterStateUninitialized {
		t.Fatalf("after 3 minutes: %s, want UNINITIALIZED", st)
	}
}
