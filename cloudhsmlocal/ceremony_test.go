package cloudhsmlocal_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
)

// TestCeremony walks the whole claim workflow through aws-sdk-go-v2.
func TestCeremony(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl := createCluster(t, c, 2)
	if cl.State != types.ClusterStateCreateInProgress {
		t.Fatalf("new cluster state %s", cl.State)
	}
	srv.Advance(time.Second)
	cl = describe(t, c, *cl.ClusterId)
	if cl.State != types.ClusterStateUninitialized || cl.Certificates.ClusterCsr != nil {
		t.Fatalf("want UNINITIALIZED without CSR, got %s csr=%v", cl.State, cl.Certificates.ClusterCsr != nil)
	}
	var az string
	for k := range cl.SubnetMapping {
		az = k
	}
	h, err := c.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: cl.ClusterId, AvailabilityZone: aws.String(az)})
	if err != nil {
		t.Fatal(err)
	}
	if h.Hsm.State != types.HsmStateCreateInProgress {
		t.Fatalf("hsm state %s", h.Hsm.State)
	}
	srv.Advance(time.Second)
	cl = describe(t, c, *cl.ClusterId)
	if len(cl.Hsms) != 1 || cl.Hsms[0].State != types.HsmStateActive || cl.Certificates.ClusterCsr == nil {
		t.Fatalf("want one ACTIVE HSM and a CSR: %+v", cl)
	}
	ca := newTestCA(t)
	signed := ca.MustSign(t, *cl.Certificates.ClusterCsr)
	ini, err := c.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: cl.ClusterId, SignedCert: aws.String(signed), TrustAnchor: aws.String(ca.PEM)})
	if err != nil {
		t.Fatal(err)
	}
	if ini.State != types.ClusterStateInitializeInProgress || *ini.StateMessage != "Cluster is initializing. State will change to INITIALIZED upon completion." {
		t.Fatalf("initialize: %s %q", ini.State, *ini.StateMessage)
	}
	srv.Advance(600 * time.Millisecond)
	cl = describe(t, c, *cl.ClusterId)
	if cl.State != types.ClusterStateInitialized || cl.Certificates.ClusterCsr != nil || aws.ToString(cl.Certificates.ClusterCertificate) != signed {
		t.Fatalf("after init: %s", cl.State)
	}
	srv.Advance(time.Second)
	cl = describe(t, c, *cl.ClusterId)
	if cl.State != types.ClusterStateActive {
		t.Fatalf("want ACTIVE, got %s", cl.State)
	}
	// A second HSM now works.
	if _, err := c.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: cl.ClusterId, AvailabilityZone: aws.String(az)}); err != nil {
		t.Fatal(err)
	}
	srv.Advance(time.Second)
	bk, err := c.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{Filters: map[string][]string{"clusterIds": {*cl.ClusterId}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(bk.Backups) != 2 {
		t.Fatalf("want 2 backups (activation, second HSM), got %d", len(bk.Backups))
	}
}
