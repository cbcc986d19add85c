package cloudhsmlocal_test

import (
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
)

func hsm1Input() *cloudhsmv2.CreateClusterInput {
	return &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm1.medium")}
}

// hsm1ClusterWithTwoHsms makes an ACTIVE hsm1.medium cluster with two
// ACTIVE HSMs, ready to migrate, and returns its id.
func hsm1ClusterWithTwoHsms(t *testing.T, srv *cloudhsmlocal.Server, c *cloudhsmv2.Client) string {
	t.Helper()
	cl, _ := activeClusterWith(t, srv, c, hsm1Input())
	id := *cl.ClusterId
	mustCreateHsm(t, c, id, sortedAZsOf(cl)[1], "")
	srv.Advance(2 * stepDelay)
	return id
}

func sortedIPs(cl *types.Cluster) []string {
	out := make([]string, 0, len(cl.Hsms))
	for _, h := range cl.Hsms {
		out = append(out, aws.ToString(h.EniIp))
	}
	slices.Sort(out)
	return out
}

func retentionOf(cl *types.Cluster) string {
	if cl.BackupRetentionPolicy == nil {
		return ""
	}
	return aws.ToString(cl.BackupRetentionPolicy.Value)
}

// TestModifyClusterHsmTypeMigration migrates an ACTIVE hsm1.medium cluster
// with two HSMs to hsm2m.medium.
func TestModifyClusterHsmTypeMigration(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl, _ := activeClusterWith(t, srv, c, hsm1Input())
	id := *cl.ClusterId
	mustCreateHsm(t, c, id, sortedAZsOf(cl)[1], "")
	srv.Advance(stepDelay) // second HSM ACTIVE, its backup started
	srv.Advance(stepDelay) // that backup READY
	cl = describe(t, c, id)
	if len(cl.Hsms) != 2 || aws.ToString(cl.HsmType) != "hsm1.medium" {
		t.Fatalf("want an hsm1.medium cluster with 2 HSMs: %+v", cl)
	}
	for _, h := range cl.Hsms {
		if aws.ToString(h.HsmType) != "hsm1.medium" {
			t.Errorf("HSM %s of an hsm1.medium cluster has HsmType %s", *h.HsmId, aws.ToString(h.HsmType))
		}
	}
	ipsBefore := sortedIPs(cl)
	backupsBefore := len(backupsOf(t, c, id))

	started := srv.Now()
	out, err := c.ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: &id, HsmType: aws.String("hsm2m.medium")})
	if err != nil {
		t.Fatalf("ModifyCluster HsmType: %v", err)
	}
	if out.Cluster.State != types.ClusterStateModifyInProgress {
		t.Errorf("ModifyCluster answered state %s, want MODIFY_IN_PROGRESS", out.Cluster.State)
	}
	want := started.Add(24 * time.Hour)
	if exp := out.Cluster.HsmTypeRollbackExpiration; exp == nil || exp.Sub(want).Abs() > time.Millisecond {
		t.Errorf("HsmTypeRollbackExpiration %v, want %v (start + 24h)", exp, want)
	}
	if got := describe(t, c, id); got.State != types.ClusterStateModifyInProgress || got.HsmTypeRollbackExpiration == nil {
		t.Errorf("DescribeClusters during migration: %s, rollback expiration %v", got.State, got.HsmTypeRollbackExpiration)
	}
	if bs := backupsOf(t, c, id); len(bs) != backupsBefore+1 {
		t.Errorf("migration should take a backup: %d backups before, %v after", backupsBefore, states(bs))
	}
	// No HSM changes while the migration runs.
	_, err = c.CreateHsm(ctx, createHsmInput(id, sortedAZsOf(cl)[0], ""))
	wantAPIError(t, err, codeInvalidRequest, "MODIFY_IN_PROGRESS")
	_, err = c.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: &id, HsmId: cl.Hsms[0].HsmId})
	wantAPIError(t, err, codeInvalidRequest, "MODIFY_IN_PROGRESS")

	// One delay per HSM: still migrating after the first.
	srv.Advance(stepDelay)
	if st := describe(t, c, id).State; st != types.ClusterStateModifyInProgress {
		t.Errorf("after one delay (of two HSMs) the cluster is %s, want MODIFY_IN_PROGRESS", st)
	}
	srv.Advance(stepDelay)
	cl = describe(t, c, id)
	if cl.State != types.ClusterStateActive || aws.ToString(cl.HsmType) != "hsm2m.medium" {
		t.Fatalf("after 2 delays: %s %s, want ACTIVE hsm2m.medium", cl.State, aws.ToString(cl.HsmType))
	}
	if len(cl.Hsms) != 2 {
		t.Fatalf("migration left %d HSMs, want 2", len(cl.Hsms))
	}
	for _, h := range cl.Hsms {
		if aws.ToString(h.HsmType) != "hsm2m.medium" || h.State != types.HsmStateActive {
			t.Errorf("HSM %s after migration: %s %s", *h.HsmId, aws.ToString(h.HsmType), h.State)
		}
	}
	if ips := sortedIPs(cl); !slices.Equal(ips, ipsBefore) {
		t.Errorf("HSM addresses changed: %v -> %v", ipsBefore, ips)
	}
	// AWS takes a full backup before each HSM is migrated: one per HSM.
	bs := backupsOf(t, c, id)
	if len(bs) != backupsBefore+2 || bs[len(bs)-1].BackupState != types.BackupStateReady {
		t.Errorf("migration backups: %v, want %d more than the %d before", states(bs), 2, backupsBefore)
	}
}

// TestModifyClusterHsmTypeRefusals: only hsm1.medium -> hsm2m.medium on an
// ACTIVE cluster; a refused call changes nothing, not even a retention given
// with it.
func TestModifyClusterHsmTypeRefusals(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	hsm2, _ := activeClusterWith(t, srv, c, nil)
	hsm1, _ := activeClusterWith(t, srv, c, hsm1Input())
	uninit := clusterWithoutHsm(t, srv, c, hsm1Input())
	const hsmTypePat = `((p|)hsm[0-9][a-z.]*\.[a-zA-Z]+)`
	cases := []struct {
		name      string
		cluster   *types.Cluster
		hsmType   string
		retention string
		exact     string
		contains  []string
	}{
		{name: "hsm2m.medium to hsm1.medium", cluster: hsm2, hsmType: "hsm1.medium", contains: []string{"hsm1.medium"}},
		{name: "hsm1.medium cluster UNINITIALIZED", cluster: uninit, hsmType: "hsm2m.medium", contains: []string{*uninit.ClusterId, "UNINITIALIZED", "ACTIVE"}},
		{name: "unknown type matching the pattern", cluster: hsm1, hsmType: "hsm9.large", contains: []string{"hsm9.large"}},
		{name: "type violating the pattern", cluster: hsm1, hsmType: "bogus",
			exact: "1 validation error detected: Value 'bogus' at 'hsmType' failed to satisfy constraint: Member must satisfy regular expression pattern: " + hsmTypePat},
		{name: "retention with a refused HsmType", cluster: hsm2, hsmType: "hsm1.medium", retention: "30", contains: []string{"hsm1.medium"}},
		{name: "retention with an HsmType change while UNINITIALIZED", cluster: uninit, hsmType: "hsm2m.medium", retention: "30", contains: []string{"ACTIVE"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := *tc.cluster.ClusterId
			before := describe(t, c, id)
			nb := len(backupsOf(t, c, id))
			in := &cloudhsmv2.ModifyClusterInput{ClusterId: &id, HsmType: &tc.hsmType}
			if tc.retention != "" {
				in.BackupRetentionPolicy = &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: &tc.retention}
			}
			_, err := c.ModifyCluster(ctx, in)
			if tc.exact != "" {
				wantExactAPIError(t, err, codeInvalidRequest, tc.exact)
			} else {
				wantAPIError(t, err, codeInvalidRequest, tc.contains...)
			}
			after := describe(t, c, id)
			if after.State != before.State || aws.ToString(after.HsmType) != aws.ToString(before.HsmType) ||
				retentionOf(after) != retentionOf(before) || after.HsmTypeRollbackExpiration != nil {
				t.Errorf("refused ModifyCluster changed the cluster: %s %s retention %s -> %s %s retention %s (rollback expiration %v)",
					before.State, aws.ToString(before.HsmType), retentionOf(before),
					after.State, aws.ToString(after.HsmType), retentionOf(after), after.HsmTypeRollbackExpiration)
			}
			if n := len(backupsOf(t, c, id)); n != nb {
				t.Errorf("refused ModifyCluster took a backup (%d -> %d)", nb, n)
			}
		})
	}
}

// TestModifyClusterRetentionWithHsmType changes both in one call.
func TestModifyClusterRetentionWithHsmType(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl, _ := activeClusterWith(t, srv, c, hsm1Input())
	id := *cl.ClusterId
	out, err := c.ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: &id, HsmType: aws.String("hsm2m.medium"),
		BackupRetentionPolicy: &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String("30")}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Cluster.State != types.ClusterStateModifyInProgress || retentionOf(out.Cluster) != "30" {
		t.Errorf("ModifyCluster answered %s retention %q, want MODIFY_IN_PROGRESS retention 30", out.Cluster.State, retentionOf(out.Cluster))
	}
	srv.Advance(stepDelay) // one HSM: one delay
	cl = describe(t, c, id)
	if cl.State != types.ClusterStateActive || aws.ToString(cl.HsmType) != "hsm2m.medium" || retentionOf(cl) != "30" {
		t.Errorf("after migration: %s %s retention %q, want ACTIVE hsm2m.medium retention 30", cl.State, aws.ToString(cl.HsmType), retentionOf(cl))
	}
	if h := cl.Hsms[0]; aws.ToString(h.HsmType) != "hsm2m.medium" {
		t.Errorf("HSM type %s", aws.ToString(h.HsmType))
	}
}

// TestModifyClusterHsmTypeRollback: within 24 hours of a migration's start,
// ModifyCluster back to the previous type rolls the HSMs back one by one
// (ROLLBACK_IN_PROGRESS); once rolled back, or after the window, it is
// refused.
func TestModifyClusterHsmTypeRollback(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	id := hsm1ClusterWithTwoHsms(t, srv, c)
	ipsBefore := sortedIPs(describe(t, c, id))
	migrate := func(to string) (*types.Cluster, error) {
		out, err := c.ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: &id, HsmType: aws.String(to)})
		if err != nil {
			return nil, err
		}
		return out.Cluster, nil
	}
	if _, err := migrate("hsm2m.medium"); err != nil {
		t.Fatal(err)
	}
	srv.Advance(2 * stepDelay)
	if got := describe(t, c, id); got.State != types.ClusterStateActive || aws.ToString(got.HsmType) != "hsm2m.medium" {
		t.Fatalf("after the migration: %s %s", got.State, aws.ToString(got.HsmType))
	}
	out, err := migrate("hsm1.medium")
	if err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if out.State != types.ClusterStateRollbackInProgress {
		t.Fatalf("rollback answered %s, want ROLLBACK_IN_PROGRESS", out.State)
	}
	srv.Advance(stepDelay)
	if st := describe(t, c, id).State; st != types.ClusterStateRollbackInProgress {
		t.Fatalf("after one delay of two HSMs: %s, want ROLLBACK_IN_PROGRESS", st)
	}
	srv.Advance(stepDelay)
	got := describe(t, c, id)
	if got.State != types.ClusterStateActive || aws.ToString(got.HsmType) != "hsm1.medium" || got.HsmTypeRollbackExpiration != nil {
		t.Fatalf("after the rollback: %s %s expiration %v", got.State, aws.ToString(got.HsmType), got.HsmTypeRollbackExpiration)
	}
	for _, h := range got.Hsms {
		if aws.ToString(h.HsmType) != "hsm1.medium" {
			t.Errorf("HSM %s is %s after the rollback", *h.HsmId, aws.ToString(h.HsmType))
		}
	}
	if ips := sortedIPs(got); !slices.Equal(ips, ipsBefore) {
		t.Errorf("addresses changed: %v -> %v", ipsBefore, ips)
	}
	// Migrate again, and let the 24-hour window pass: no rollback then.
	if _, err := migrate("hsm2m.medium"); err != nil {
		t.Fatal(err)
	}
	srv.Advance(2 * stepDelay)
	srv.Advance(24 * time.Hour)
	_, err = migrate("hsm1.medium")
	wantAPIError(t, err, codeInvalidRequest, "rollback window")
}
