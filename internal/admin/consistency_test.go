package admin_test

// Tests of state that must stay right when resources change other than
// through the usual calls: imports that replace, degraded HSMs, restarts.

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/internal/admin"
	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
)

// importSnapshot posts a snapshot document given as Go maps.
func importSnapshot(t *testing.T, e *env, clusters, backups []any) {
	t.Helper()
	t.Helper()
	if err := importDoc(e, clusters, backups); err != nil {
		t.Fatalf("import: %v", err)
	}
}

func snapCluster(id, state, hsmType string, retention int, hsms ...string) map[string]any {
	c := map[string]any{
		"account": acctA, "region": "us-east-1", "clusterId": id, "state": state, "hsmType": hsmType,
		"subnets": []any{subnetA},
	}
	if retention != 0 {
		c["backupRetentionDays"] = retention
	}
	var hs []map[string]any
	for _, h := range hsms {
		hs = append(hs, vHsm(h, map[string]any{"state": "ACTIVE"}))
	}
	if hs != nil {
		c["hsms"] = hs
	}
	return c
}

func snapBackup(id, clusterID string, created time.Time, extra map[string]any) map[string]any {
	return vBackup(acctA, "us-east-1", id, with(map[string]any{"clusterId": clusterID, "state": "READY", "createdAt": created}, extra))
}

func backupStates(t *testing.T, c *cloudhsmv2.Client) map[string]types.BackupState {
	t.Helper()
	out, err := c.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]types.BackupState{}
	for _, b := range out.Backups {
		m[aws.ToString(b.BackupId)] = b.BackupState
	}
	return m
}

func clusterState(t *testing.T, c *cloudhsmv2.Client, id string) types.Cluster {
	t.Helper()
	out, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"clusterIds": {id}}})
	if err != nil || len(out.Clusters) != 1 {
		t.Fatalf("DescribeClusters %s: %+v, %v", id, out, err)
	}
	return out.Clusters[0]
}

// A cluster whose HSM is degraded during a timed state (initializing,
// waiting for activation) still makes that state's transition when it
// falls due, under DEGRADED, and is ACTIVE once the HSM is healed.
func TestDegradeDuringTransitionThenHeal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, state string
	}{
		{"initialize", "INITIALIZE_IN_PROGRESS"},
		{"initialized", "INITIALIZED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, clk := t.TempDir(), clock.NewFrozen(start)
			e := newEnv(t, server.Config{DataDir: dir, Clock: clk})
			importSnapshot(t, e, []any{snapCluster("cluster-aaaaaaaaaab", tc.state, "", 0, "hsm-aaaaaaaaaab")}, nil)
			target := admin.HsmTarget{Account: acctA, Region: "us-east-1", ClusterID: "cluster-aaaaaaaaaab", HsmID: "hsm-aaaaaaaaaab"}
			if _, err := e.admin.Degrade(ctx, target); err != nil {
				t.Fatal(err)
			}
			if _, err := e.admin.Advance(ctx, time.Hour); err != nil { // the transition falls due while DEGRADED
				t.Fatal(err)
			}
			// Still DEGRADED, also as stored.
			e.hs.Close()
			if err := e.srv.Close(); err != nil {
				t.Fatal(err)
			}
			e = newEnv(t, server.Config{DataDir: dir, Clock: clk})
			c := e.sdk(acctA, "us-east-1", 1)
			if got := clusterState(t, c, "cluster-aaaaaaaaaab").State; got != types.ClusterStateDegraded {
				t.Fatalf("imported %s, degraded, an hour later and restarted: %s, want DEGRADED", tc.state, got)
			}
			if _, err := e.admin.Heal(ctx, target); err != nil {
				t.Fatal(err)
			}
			if _, err := e.admin.Advance(ctx, 24*time.Hour); err != nil {
				t.Fatal(err)
			}
			if got := clusterState(t, c, "cluster-aaaaaaaaaab").State; got != types.ClusterStateActive {
				t.Errorf("imported %s, degraded, healed, a day later: %s, want ACTIVE", tc.state, got)
			}
		})
	}
}

// The same through the API: an HsmType migration (MODIFY_IN_PROGRESS)
// completes although an HSM was degraded and healed during it.
func TestDegradeDuringMigrationThenHeal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	importSnapshot(t, e, []any{snapCluster("cluster-aaaaaaaaaab", "ACTIVE", "hsm1.medium", 0, "hsm-aaaaaaaaaab")}, nil)
	c := e.sdk(acctA, "us-east-1", 1)
	if _, err := c.ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: aws.String("cluster-aaaaaaaaaab"), HsmType: aws.String("hsm2m.medium")}); err != nil {
		t.Fatal(err)
	}
	target := admin.HsmTarget{Account: acctA, Region: "us-east-1", ClusterID: "cluster-aaaaaaaaaab", HsmID: "hsm-aaaaaaaaaab"}
	if _, err := e.admin.Degrade(ctx, target); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.Advance(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.Heal(ctx, target); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.Advance(ctx, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	got := clusterState(t, c, "cluster-aaaaaaaaaab")
	if got.State != types.ClusterStateActive || aws.ToString(got.HsmType) != "hsm2m.medium" {
		t.Errorf("migration with a degrade/heal in the middle, a day later: %s %s, want ACTIVE hsm2m.medium", got.State, aws.ToString(got.HsmType))
	}
}

// ModifyCluster's new retention moves the expiry of the cluster's backups
// durably: after a restart they expire by the new retention.
func TestRetentionChangeSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := clock.NewFrozen(start)
	e := newEnv(t, server.Config{DataDir: dir, Clock: clk})
	importSnapshot(t, e,
		[]any{snapCluster("cluster-aaaaaaaaaab", "ACTIVE", "", 7, "hsm-aaaaaaaaaab")},
		[]any{
			snapBackup("backup-aaaaaaaaaab", "cluster-aaaaaaaaaab", start.Add(-48*time.Hour), map[string]any{"backupRetentionDays": 7}),
			snapBackup("backup-aaaaaaaaaac", "cluster-aaaaaaaaaab", start.Add(-24*time.Hour), map[string]any{"backupRetentionDays": 7}),
		})
	c := e.sdk(acctA, "us-east-1", 1)
	if _, err := c.ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: aws.String("cluster-aaaaaaaaaab"),
		BackupRetentionPolicy: &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String("30")}}); err != nil {
		t.Fatal(err)
	}
	e.hs.Close()
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	e = newEnv(t, server.Config{DataDir: dir, Clock: clk})
	c = e.sdk(acctA, "us-east-1", 1)
	if _, err := e.admin.Advance(ctx, 10*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	st := backupStates(t, c)
	for _, id := range []string{"backup-aaaaaaaaaab", "backup-aaaaaaaaaac"} {
		if st[id] != types.BackupStateReady {
			t.Errorf("%s, 12 days old, retention 30 days, after a restart: %s, want READY", id, st[id])
		}
	}
}

// Imported backups expire by the retention of their cluster as the
// snapshot gives it: seeded fresh, re-seeded over a cluster with another
// retention, or with only the cluster imported again (which moves its
// backups' expiry, as ModifyCluster does). Each case: a cluster with two
// 30-day-old backups ends with 7 days' retention, and 2 days after the
// import (a day's grace) the older backup is PENDING_DELETION.
func TestImportedBackupsExpireByTheSnapshotsRetention(t *testing.T) {
	t.Parallel()
	old := start.Add(-30 * 24 * time.Hour)
	cluster := func(retention int) []any {
		return []any{snapCluster("cluster-aaaaaaaaaab", "ACTIVE", "", retention, "hsm-aaaaaaaaaab")}
	}
	backups := []any{
		snapBackup("backup-aaaaaaaaaab", "cluster-aaaaaaaaaab", old, nil),
		snapBackup("backup-aaaaaaaaaac", "cluster-aaaaaaaaaab", old.Add(time.Hour), nil),
	}
	type snap struct{ clusters, backups []any }
	for _, tc := range []struct {
		name    string
		imports []snap
	}{
		{"fresh seed", []snap{{cluster(7), backups}}},
		{"re-seed over 90 days", []snap{{cluster(90), backups}, {cluster(7), backups}}},
		{"cluster alone again", []snap{{cluster(90), backups}, {cluster(7), nil}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, server.Config{})
			for _, im := range tc.imports {
				importSnapshot(t, e, im.clusters, im.backups)
			}
			if _, err := e.admin.Advance(ctx, 2*24*time.Hour); err != nil {
				t.Fatal(err)
			}
			if got := backupStates(t, e.sdk(acctA, "us-east-1", 1))["backup-aaaaaaaaaab"]; got != types.BackupStatePendingDeletion {
				t.Errorf("30-day-old backup of a cluster imported with 7 days' retention, 2 days later: %s, want PENDING_DELETION", got)
			}
		})
	}
}

// A backup remembers its cluster's retention (Backup.RetentionDays) for
// when the cluster is gone; ModifyCluster's new retention is what it
// remembers, so expiry computed after the cluster expired (NeverExpires
// set and cleared) uses it.
func TestRetentionOfBackupsOfAGoneCluster(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	c := e.sdk(acctA, "us-east-1", 1)
	importSnapshot(t, e, []any{snapCluster("cluster-aaaaaaaaaab", "ACTIVE", "", 7, "hsm-aaaaaaaaaab")}, nil)
	// Two scheduled backups (taken with RetentionDays 7).
	if _, err := e.admin.Advance(ctx, 49*time.Hour); err != nil {
		t.Fatal(err)
	}
	bs, err := c.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{SortAscending: aws.Bool(true)})
	if err != nil || len(bs.Backups) < 2 {
		t.Fatalf("backups: %+v %v", bs, err)
	}
	first := aws.ToString(bs.Backups[0].BackupId)
	if _, err := c.ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: aws.String("cluster-aaaaaaaaaab"),
		BackupRetentionPolicy: &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String("30")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: aws.String("cluster-aaaaaaaaaab"), HsmId: aws.String("hsm-aaaaaaaaaab")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.Advance(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: aws.String("cluster-aaaaaaaaaab")}); err != nil {
		t.Fatal(err)
	}
	// The cluster is DELETED, then gone (DeletedRetention 1h); the first backup is 10 days old.
	if _, err := e.admin.Advance(ctx, 8*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, never := range []bool{true, false} {
		if _, err := c.ModifyBackupAttributes(ctx, &cloudhsmv2.ModifyBackupAttributesInput{BackupId: aws.String(first), NeverExpires: aws.Bool(never)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.admin.Advance(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := backupStates(t, c)[first]; got != types.BackupStateReady {
		t.Errorf("10-day-old backup of a (gone) cluster whose retention was 30 days: %s, want READY", got)
	}
}

// A cluster is DEGRADED while one of its HSMs is: deleting the degraded
// HSM restores the cluster's state, as healing it does.
func TestDeletingTheDegradedHsmRestoresTheCluster(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	cl := snapCluster("cluster-aaaaaaaaaab", "ACTIVE", "", 0, "hsm-aaaaaaaaaab", "hsm-aaaaaaaaaac")
	importSnapshot(t, e, []any{cl}, nil)
	c := e.sdk(acctA, "us-east-1", 1)
	if _, err := e.admin.Degrade(ctx, admin.HsmTarget{Account: acctA, Region: "us-east-1", ClusterID: "cluster-aaaaaaaaaab", HsmID: "hsm-aaaaaaaaaab"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: aws.String("cluster-aaaaaaaaaab"), HsmId: aws.String("hsm-aaaaaaaaaab")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.Advance(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	got := clusterState(t, c, "cluster-aaaaaaaaaab")
	if len(got.Hsms) != 1 || got.Hsms[0].State != types.HsmStateActive || got.State != types.ClusterStateActive {
		t.Errorf("degraded HSM deleted, the other ACTIVE: cluster %s (HSMs %d), want ACTIVE", got.State, len(got.Hsms))
	}
}

// Reset deletes the security groups of the clusters it removes, as
// DeleteCluster does: with an EC2 neighbour (moto, LocalStack) a reset
// between tests leaves no "cloudhsm-cluster-<id>-sg" groups behind. So
// does an import that replaces a cluster with one of another group.
func TestResetAndReplaceDeleteSecurityGroups(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var deleted []string
	groups := 0
	ec2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "text/xml")
		switch form.Get("Action") {
		case "DescribeSubnets":
			io.WriteString(w, `<DescribeSubnetsResponse><subnetSet><item><subnetId>subnet-0bb1c79de3abcdef0</subnetId><state>available</state>`+
				`<vpcId>vpc-0ee975135d0e0a0a0</vpcId><cidrBlock>10.0.2.0/24</cidrBlock><availabilityZone>us-east-1a</availabilityZone></item></subnetSet></DescribeSubnetsResponse>`)
		case "CreateSecurityGroup":
			groups++
			fmt.Fprintf(w, `<CreateSecurityGroupResponse><groupId>sg-0123456789abcdef%d</groupId></CreateSecurityGroupResponse>`, groups)
		case "AuthorizeSecurityGroupIngress":
			io.WriteString(w, `<AuthorizeSecurityGroupIngressResponse><return>true</return></AuthorizeSecurityGroupIngressResponse>`)
		case "DeleteSecurityGroup":
			deleted = append(deleted, form.Get("GroupId"))
			io.WriteString(w, `<DeleteSecurityGroupResponse><return>true</return></DeleteSecurityGroupResponse>`)
		default:
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	t.Cleanup(ec2.Close)
	e := newEnv(t, server.Config{EC2: &network.EC2Config{Endpoint: ec2.URL}})
	c := e.sdk(acctA, "us-east-1", 1)
	create := func() string {
		t.Helper()
		out, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: []string{"subnet-0bb1c79de3abcdef0"}})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.Cluster.ClusterId)
	}
	wantDeleted := func(when string, want ...string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(deleted, want) {
			t.Errorf("%s: EC2 DeleteSecurityGroup calls %q, want %q", when, deleted, want)
		}
	}
	create()
	// Reset deletes the group before it answers (after the service's lock).
	if _, err := e.admin.Reset(ctx, ""); err != nil {
		t.Fatal(err)
	}
	wantDeleted("after a reset", "sg-0123456789abcdef1")

	id := create()
	doc, err := e.admin.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Imported again as it is: the same group, kept.
	if _, err := e.admin.Import(ctx, bytes.NewReader(doc)); err != nil {
		t.Fatal(err)
	}
	wantDeleted("after importing the cluster over itself", "sg-0123456789abcdef1")
	// Imported with another group: the old one goes.
	importSnapshot(t, e, []any{map[string]any{
		"account": acctA, "region": "us-east-1", "clusterId": id, "state": "UNINITIALIZED", "securityGroupId": "sg-0fedcba98765432100",
		"subnets": []map[string]string{{"subnetId": "subnet-0bb1c79de3abcdef0", "vpcId": "vpc-0ee975135d0e0a0a0", "availabilityZone": "us-east-1a", "cidr": "10.0.2.0/24"}},
	}}, nil)
	wantDeleted("after replacing the cluster by one with another group", "sg-0123456789abcdef1", "sg-0123456789abcdef2")
}

// Imported clusters' subnets become known to the learned network: a later
// CreateCluster naming one of them finds it in the imported cluster's VPC
// and zone, also after a restart, instead of a new placement.
func TestImportedSubnetsAreKnown(t *testing.T) {
	t.Parallel()
	dir, clk := t.TempDir(), clock.NewFrozen(start)
	e := newEnv(t, server.Config{DataDir: dir, Clock: clk})
	importSnapshot(t, e, []any{snapCluster("cluster-aaaaaaaaaab", "ACTIVE", "", 0)}, nil)
	for _, restart := range []bool{false, true} {
		if restart {
			e.hs.Close()
			if err := e.srv.Close(); err != nil {
				t.Fatal(err)
			}
			e = newEnv(t, server.Config{DataDir: dir, Clock: clk})
		}
		c := e.sdk(acctA, "us-east-1", 1)
		out, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: []string{"subnet-0f1e2d3c4b5a69781"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := aws.ToString(out.Cluster.VpcId); got != "vpc-0a1b2c3d4e5f60718" {
			t.Errorf("restarted: %v: subnet-0f1e2d3c4b5a69781 is in vpc-0a1b2c3d4e5f60718 for the imported cluster, in %s for a new cluster", restart, got)
		}
		if got := out.Cluster.SubnetMapping["us-east-1a"]; got != "subnet-0f1e2d3c4b5a69781" {
			t.Errorf("restarted: %v: new cluster's subnet mapping %v, want subnet-0f1e2d3c4b5a69781 in us-east-1a", restart, out.Cluster.SubnetMapping)
		}
	}
}

// Only a cluster that is ACTIVE under DEGRADED takes backups: one degraded
// while waiting for activation (manual here) takes no daily backup.
func TestDegradedUnactivatedClusterTakesNoBackups(t *testing.T) {
	t.Parallel()
	domain := cloudhsm.DefaultConfig()
	domain.ManualActivation = true
	e := newEnv(t, server.Config{Domain: domain})
	cl := snapCluster("cluster-aaaaaaaaaab", "DEGRADED", "", 0, "hsm-aaaaaaaaaab")
	cl["stateBeforeDegraded"] = "INITIALIZED"
	cl["hsms"].([]map[string]any)[0]["state"] = "DEGRADED"
	importSnapshot(t, e, []any{cl}, nil)
	if _, err := e.admin.Advance(ctx, 3*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if bs := backupStates(t, e.sdk(acctA, "us-east-1", 1)); len(bs) != 0 {
		t.Errorf("a cluster DEGRADED while INITIALIZED took backups: %v", bs)
	}
}
