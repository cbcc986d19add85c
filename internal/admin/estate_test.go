package admin_test

// An estate built through the AWS and admin APIs that holds, at one
// instant, every piece of state a snapshot must carry for the service to
// carry on: in-progress states with their due times, a migration with its
// target and rollback window, a rollback, DEGRADED over ACTIVE and over
// MODIFY_IN_PROGRESS, a pending manual activation, DELETE_IN_PROGRESS and
// DELETED clusters, HSMs being created and deleted, a dual-stack and a
// NON_FIPS cluster, a cluster restored from a backup, and backups of every
// kind: being made, READY with an expiry, kept forever, pending deletion by
// a user and by retention, copied to another region, shared by a policy,
// tagged.

import (
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/internal/admin"
	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/pki"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

// estateStep is the delay of every in-progress state of the estate's
// servers but an HSM type migration step (estateModifyStep).
const (
	estateStep       = time.Minute
	estateModifyStep = time.Hour
)

// estateConfig is the configuration of a server that holds the estate (and
// of one an export of it is imported into): manual activation, so that a
// pending activation can be part of it.
func estateConfig(identities pki.IdentitySource) server.Config {
	domain := cloudhsm.DefaultConfig()
	domain.Delays = cloudhsm.UniformDelays(estateStep)
	domain.Delays.ModifyPerHsm = estateModifyStep
	domain.Delays.BackupCopy = 2 * estateStep
	domain.ManualActivation = true
	domain.DeletedRetention = 48 * time.Hour
	return server.Config{
		Clock:      clock.NewFrozen(start),
		Domain:     domain,
		Identities: func() pki.IdentitySource { return identities },
	}
}

// estate builds the estate in e (a server made with estateConfig) and
// returns the ids of its clusters by role.
type estate struct {
	t  *testing.T
	e  *env
	c  *cloudhsmv2.Client // acctA, us-east-1
	ca *testkit.CA
	// ids of the clusters by role, for the tests that check how the
	// estate carries on.
	ids map[string]string
}

func (es *estate) advance(d time.Duration) {
	es.t.Helper()
	if _, err := es.e.admin.Advance(ctx, d); err != nil {
		es.t.Fatal(err)
	}
}

func (es *estate) create(c *cloudhsmv2.Client, in *cloudhsmv2.CreateClusterInput) *types.Cluster {
	es.t.Helper()
	if in.HsmType == nil {
		in.HsmType = aws.String("hsm2m.medium")
	}
	if in.SubnetIds == nil {
		in.SubnetIds = []string{"subnet-0f1e2d3c4b5a69781", "subnet-0123abcd4567ef890"}
	}
	out, err := c.CreateCluster(ctx, in)
	if err != nil {
		es.t.Fatalf("CreateCluster: %v", err)
	}
	return out.Cluster
}

func sortedAZs(cl types.Cluster) []string {
	azs := make([]string, 0, len(cl.SubnetMapping))
	for az := range cl.SubnetMapping {
		azs = append(azs, az)
	}
	sort.Strings(azs)
	return azs
}

func (es *estate) addHsm(c *cloudhsmv2.Client, id string, i int) string {
	es.t.Helper()
	azs := sortedAZs(clusterState(es.t, c, id))
	out, err := c.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: &id, AvailabilityZone: aws.String(azs[i%len(azs)])})
	if err != nil {
		es.t.Fatalf("CreateHsm %s: %v", id, err)
	}
	return *out.Hsm.HsmId
}

// uninitialized makes a cluster UNINITIALIZED with one ACTIVE HSM.
func (es *estate) uninitialized(c *cloudhsmv2.Client, in *cloudhsmv2.CreateClusterInput) string {
	es.t.Helper()
	id := *es.create(c, in).ClusterId
	es.advance(estateStep)
	es.addHsm(c, id, 0)
	es.advance(estateStep)
	return id
}

func (es *estate) initialize(c *cloudhsmv2.Client, id string) {
	es.t.Helper()
	cl := clusterState(es.t, c, id)
	signed := es.ca.MustSign(es.t, *cl.Certificates.ClusterCsr)
	if _, err := c.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: &id, SignedCert: &signed, TrustAnchor: &es.ca.PEM}); err != nil {
		es.t.Fatalf("InitializeCluster %s: %v", id, err)
	}
}

// active makes an ACTIVE cluster with n ACTIVE HSMs and its first backups
// READY.
func (es *estate) active(c *cloudhsmv2.Client, account, region string, n int, in *cloudhsmv2.CreateClusterInput) string {
	es.t.Helper()
	id := es.uninitialized(c, in)
	es.initialize(c, id)
	es.advance(estateStep)
	if _, err := es.e.admin.Activate(ctx, id, account, region); err != nil {
		es.t.Fatalf("activate %s: %v", id, err)
	}
	for i := 1; i < n; i++ {
		es.addHsm(c, id, i)
	}
	es.advance(2 * estateStep)
	return id
}

func (es *estate) migrate(c *cloudhsmv2.Client, id, to string) {
	es.t.Helper()
	if _, err := c.ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: &id, HsmType: aws.String(to)}); err != nil {
		es.t.Fatalf("ModifyCluster %s to %s: %v", id, to, err)
	}
}

func (es *estate) backupsOf(c *cloudhsmv2.Client, clusterID string) []types.Backup {
	es.t.Helper()
	out, err := c.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{Filters: map[string][]string{"clusterIds": {clusterID}}})
	if err != nil {
		es.t.Fatalf("DescribeBackups: %v", err)
	}
	return out.Backups
}

// buildEstate builds the estate into e: see the file comment.
func buildEstate(t *testing.T, e *env) *estate {
	t.Helper()
	es := &estate{t: t, e: e, c: e.sdk(acctA, "us-east-1", 1), ca: testkit.NewCA(t, "Estate Root", "cloudhsm-local tests"), ids: map[string]string{}}
	es.longLived()
	es.migrations()
	es.lastInstant()
	es.checkStates()
	return es
}

// longLived makes the clusters that live through eight days, and backups
// of every kind.
func (es *estate) longLived() {
	t, e, c := es.t, es.e, es.c
	b := e.sdk(acctB, "eu-west-1", 1)
	// Long-lived clusters, then eight days of daily backups: with a
	// retention of 7 days the oldest backups are purged by the service.
	es.ids["purging"] = es.active(c, acctA, "us-east-1", 1, &cloudhsmv2.CreateClusterInput{
		BackupRetentionPolicy: &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String("7")},
		TagList:               []types.Tag{{Key: aws.String("env"), Value: aws.String("prod")}, {Key: aws.String("team"), Value: aws.String("payments")}},
	})
	es.ids["other-tenant"] = es.active(b, acctB, "eu-west-1", 1, &cloudhsmv2.CreateClusterInput{SubnetIds: []string{"subnet-0aaaabbbbccccdddd"}})
	// A cluster whose only HSM is deleted takes no more backups: its
	// latest is spared by retention (never a cluster's last backup).
	es.ids["spared"] = es.active(c, acctA, "us-east-1", 1, &cloudhsmv2.CreateClusterInput{
		BackupRetentionPolicy: &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String("7")},
	})
	sp := clusterState(es.t, c, es.ids["spared"])
	if _, err := c.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: sp.ClusterId, HsmId: sp.Hsms[0].HsmId}); err != nil {
		t.Fatal(err)
	}
	es.advance(2 * estateStep)
	// A backup a user deletes now is DELETED, still listed, at the end.
	first := es.backupsOf(b, es.ids["other-tenant"])[0]
	if _, err := b.DeleteBackup(ctx, &cloudhsmv2.DeleteBackupInput{BackupId: first.BackupId}); err != nil {
		t.Fatal(err)
	}
	es.advance(8*24*time.Hour + time.Minute)

	// Backups of every kind, of the purging cluster.
	bs := es.backupsOf(c, es.ids["purging"])
	var ready []string
	for _, bk := range bs {
		if bk.BackupState == types.BackupStateReady {
			ready = append(ready, *bk.BackupId)
		}
	}
	if len(ready) < 4 || len(bs) == len(ready) {
		t.Fatalf("the purging cluster's backups: want several READY and some purged by retention, got %+v", bs)
	}
	if _, err := c.DeleteBackup(ctx, &cloudhsmv2.DeleteBackupInput{BackupId: &ready[0]}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ModifyBackupAttributes(ctx, &cloudhsmv2.ModifyBackupAttributesInput{BackupId: &ready[1], NeverExpires: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	arn := "arn:aws:cloudhsm:us-east-1:" + acctA + ":backup/" + ready[2]
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + acctB + `:root"},"Action":["cloudhsm:CreateCluster","cloudhsm:DescribeBackups"],"Resource":"` + arn + `"}]}`
	if _, err := c.PutResourcePolicy(ctx, &cloudhsmv2.PutResourcePolicyInput{ResourceArn: &arn, Policy: &policy}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: &ready[2], TagList: []types.Tag{{Key: aws.String("keep"), Value: aws.String("yes")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CopyBackupToRegion(ctx, &cloudhsmv2.CopyBackupToRegionInput{BackupId: &ready[3], DestinationRegion: aws.String("eu-west-1"),
		TagList: []types.Tag{{Key: aws.String("copy"), Value: aws.String("dr")}}}); err != nil {
		t.Fatal(err)
	}
	es.advance(2 * estateStep) // the copy READY
	// A cluster restored from a backup: ACTIVE with no HSMs.
	es.ids["restored"] = *es.create(c, &cloudhsmv2.CreateClusterInput{SourceBackupId: &ready[2]}).ClusterId
}

// migrations makes the clusters of HSM type migrations.
func (es *estate) migrations() {
	t, e, c := es.t, es.e, es.c
	// A migration done, within its rollback window (and later rolling
	// back); one migrating (one of three HSMs replaced) whose last HSM is
	// degraded.
	es.ids["migrated"] = es.active(c, acctA, "us-east-1", 2, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm1.medium")})
	es.ids["rolling-back"] = es.active(c, acctA, "us-east-1", 1, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm1.medium")})
	es.ids["migrating"] = es.active(c, acctA, "us-east-1", 3, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm1.medium")})
	es.migrate(c, es.ids["migrated"], "hsm2m.medium")
	es.migrate(c, es.ids["rolling-back"], "hsm2m.medium")
	es.advance(2*estateModifyStep + estateStep)
	es.migrate(c, es.ids["migrating"], "hsm2m.medium")
	es.advance(estateModifyStep + estateStep)
	mig := clusterState(es.t, c, es.ids["migrating"])
	if _, err := e.admin.Degrade(ctx, admin.HsmTarget{Account: acctA, Region: "us-east-1", ClusterID: es.ids["migrating"], HsmID: *mig.Hsms[2].HsmId}); err != nil {
		t.Fatal(err)
	}

}

// lastInstant makes the clusters that are in the middle of something at
// the estate's last instant.
func (es *estate) lastInstant() {
	t, e, c := es.t, es.e, es.c
	// DEGRADED over ACTIVE (dual-stack); a cluster deleted; NON_FIPS.
	es.ids["degraded"] = es.active(c, acctA, "us-east-1", 2, &cloudhsmv2.CreateClusterInput{NetworkType: types.NetworkTypeDualstack})
	deg := clusterState(es.t, c, es.ids["degraded"])
	if _, err := e.admin.Degrade(ctx, admin.HsmTarget{Account: acctA, Region: "us-east-1", ClusterID: es.ids["degraded"], HsmID: *deg.Hsms[0].HsmId}); err != nil {
		t.Fatal(err)
	}
	es.ids["deleted"] = *es.create(c, &cloudhsmv2.CreateClusterInput{}).ClusterId
	es.advance(estateStep)
	if _, err := c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: aws.String(es.ids["deleted"])}); err != nil {
		t.Fatal(err)
	}
	es.ids["hsm-deleting"] = es.active(c, acctA, "us-east-1", 2, &cloudhsmv2.CreateClusterInput{Mode: types.ClusterModeNonFips})
	es.ids["pending-activation"] = es.uninitialized(c, &cloudhsmv2.CreateClusterInput{})
	es.ids["uninitialized"] = es.uninitialized(c, &cloudhsmv2.CreateClusterInput{TagList: []types.Tag{{Key: aws.String("stage"), Value: aws.String("new")}}})
	es.ids["initializing"] = es.uninitialized(c, &cloudhsmv2.CreateClusterInput{})
	es.initialize(c, es.ids["pending-activation"])
	es.ids["deleting"] = *es.create(c, &cloudhsmv2.CreateClusterInput{}).ClusterId
	es.ids["hsm-creating"] = *es.create(c, &cloudhsmv2.CreateClusterInput{}).ClusterId
	es.advance(estateStep) // INITIALIZED awaiting activation; two more UNINITIALIZED

	// The last instant: in-progress states everywhere.
	hd := clusterState(es.t, c, es.ids["hsm-deleting"])
	if _, err := c.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: aws.String(es.ids["hsm-deleting"]), HsmId: hd.Hsms[1].HsmId}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: aws.String(es.ids["deleting"])}); err != nil {
		t.Fatal(err)
	}
	es.initialize(c, es.ids["initializing"])
	es.addHsm(c, es.ids["hsm-creating"], 0)
	es.migrate(c, es.ids["rolling-back"], "hsm1.medium")
	es.ids["creating"] = *es.create(c, &cloudhsmv2.CreateClusterInput{}).ClusterId
	es.advance(estateStep / 2)
}

// wantEstateStates is the state of each of the estate's clusters at its
// last instant.
var wantEstateStates = map[string]types.ClusterState{
	"purging": types.ClusterStateActive, "spared": types.ClusterStateActive, "other-tenant": types.ClusterStateActive, "restored": types.ClusterStateActive,
	"migrated": types.ClusterStateActive, "rolling-back": types.ClusterStateRollbackInProgress,
	"migrating": types.ClusterStateDegraded, "degraded": types.ClusterStateDegraded, "deleted": types.ClusterStateDeleted,
	"hsm-deleting": types.ClusterStateActive, "pending-activation": types.ClusterStateInitialized,
	"uninitialized": types.ClusterStateUninitialized, "deleting": types.ClusterStateDeleteInProgress,
	"initializing": types.ClusterStateInitializeInProgress, "hsm-creating": types.ClusterStateUninitialized,
	"creating": types.ClusterStateCreateInProgress,
}

func (es *estate) checkStates() {
	es.t.Helper()
	for role, want := range wantEstateStates {
		c := es.c
		if role == "other-tenant" {
			c = es.e.sdk(acctB, "eu-west-1", 1)
		}
		if got := clusterState(es.t, c, es.ids[role]).State; got != want {
			es.t.Errorf("estate cluster %q (%s) is %s, want %s", role, es.ids[role], got, want)
		}
	}
	if es.t.Failed() {
		es.t.FailNow()
	}
}
