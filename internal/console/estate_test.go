package console_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

// estate is what the browser tests look at, made through aws-sdk-go-v2.
type estate struct {
	active, uninit *types.Cluster // ACTIVE with one HSM (acctA us-east-1); UNINITIALIZED (acctB eu-west-1)
	hsmID, az      string
	backup, copy   string // the activation backup and its copy in us-west-2
	arn            string
}

// makeEstate builds: an ACTIVE cluster with an HSM and its activation
// backup, copied to us-west-2 and shared with acctB; an UNINITIALIZED
// cluster in another account and region; and a refused call whose body
// holds markup.
func makeEstate(t *testing.T, e *env) estate {
	t.Helper()
	var s estate
	a := e.sdk(acctA, "us-east-1")
	out, err := a.CreateCluster(bg, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: newSubnets(2),
		TagList: []types.Tag{{Key: aws.String("team"), Value: aws.String("payments")}}})
	if err != nil {
		t.Fatal(err)
	}
	id := out.Cluster.ClusterId
	e.advance(t, time.Second)
	for az := range out.Cluster.SubnetMapping {
		s.az = az
		break
	}
	hsm, err := a.CreateHsm(bg, &cloudhsmv2.CreateHsmInput{ClusterId: id, AvailabilityZone: aws.String(s.az)})
	if err != nil {
		t.Fatal(err)
	}
	s.hsmID = *hsm.Hsm.HsmId
	e.advance(t, time.Second)
	d, err := a.DescribeClusters(bg, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"clusterIds": {*id}}})
	if err != nil {
		t.Fatal(err)
	}
	ca := testkit.NewCA(t, "Example Org Root CA", "Example Org")
	if _, err := a.InitializeCluster(bg, &cloudhsmv2.InitializeClusterInput{ClusterId: id, SignedCert: aws.String(ca.MustSign(t, *d.Clusters[0].Certificates.ClusterCsr)), TrustAnchor: aws.String(ca.PEM)}); err != nil {
		t.Fatal(err)
	}
	e.advance(t, 2*time.Second)
	d, _ = a.DescribeClusters(bg, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"clusterIds": {*id}}})
	s.active = &d.Clusters[0]
	if s.active.State != types.ClusterStateActive {
		t.Fatalf("cluster is %s", s.active.State)
	}
	bs, err := a.DescribeBackups(bg, &cloudhsmv2.DescribeBackupsInput{Filters: map[string][]string{"clusterIds": {*id}}})
	if err != nil || len(bs.Backups) == 0 {
		t.Fatalf("no activation backup: %v", err)
	}
	s.backup, s.arn = *bs.Backups[0].BackupId, *bs.Backups[0].BackupArn
	cp, err := a.CopyBackupToRegion(bg, &cloudhsmv2.CopyBackupToRegionInput{BackupId: &s.backup, DestinationRegion: aws.String("us-west-2")})
	if err != nil {
		t.Fatal(err)
	}
	s.copy = *cp.DestinationBackup.SourceBackup
	w, err := e.sdk(acctA, "us-west-2").DescribeBackups(bg, &cloudhsmv2.DescribeBackupsInput{})
	if err != nil || len(w.Backups) != 1 {
		t.Fatalf("copy: %v", err)
	}
	s.copy = *w.Backups[0].BackupId
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::%s:root"},"Action":["cloudhsm:DescribeBackups","cloudhsm:CreateCluster"],"Resource":"%s"}]}`, acctB, s.arn)
	if _, err := a.PutResourcePolicy(bg, &cloudhsmv2.PutResourcePolicyInput{ResourceArn: &s.arn, Policy: &policy}); err != nil {
		t.Fatal(err)
	}
	s.uninit = createCluster(t, e.sdk(acctB, "eu-west-1"))
	e.advance(t, time.Second)
	// A client sends markup; the service refuses it, and the console shows it.
	if _, err := a.TagResource(bg, &cloudhsmv2.TagResourceInput{ResourceId: id, TagList: []types.Tag{{Key: aws.String("note"), Value: aws.String(untrusted)}}}); err == nil {
		t.Fatal("a tag value with markup was accepted")
	}
	return s
}

// untrusted is text that would run if the console rendered it as markup.
const untrusted = `<script>window.pwned=1</script><img src=x onerror="window.pwned=2">`
