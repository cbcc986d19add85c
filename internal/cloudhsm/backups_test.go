package cloudhsm_test

// Backups: when the service takes them, retention, the deletion window,
// NeverExpires and copies to other regions.

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
)

// wantCreated checks the backups' creation times, oldest first.
func wantCreated(t *testing.T, bs []*cloudhsm.Backup, want ...time.Time) {
	t.Helper()
	got := make([]time.Time, len(bs))
	for i, b := range bs {
		got[i] = b.Created
	}
	if !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Fatalf("backups created at %v, want %v", got, want)
	}
}

// Backups are taken on activation, when an HSM of an ACTIVE cluster
// becomes ACTIVE or starts being deleted, and every BackupInterval while
// the cluster is ACTIVE with HSMs; never before activation, never for an
// ACTIVE cluster without HSMs. Each is CREATE_IN_PROGRESS for BackupCreate,
// then READY, and carries the cluster's type, mode, certificate and tags.
func TestBackupTriggers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, manual, func(c *cloudhsm.Config) { c.BackupInterval = 6 * time.Hour })
	d := testDelays()
	c, h := e.uninitialized(func(in *cloudhsm.CreateClusterInput) { in.Tags = []cloudhsm.Tag{{Key: "team", Value: "x"}} })
	e.initialize(c.ID)
	e.advance(d.ClusterInitialize + 3*day)
	if bs := e.backups(c.ID); len(bs) != 0 {
		t.Fatalf("backups before activation: %v", states(bs))
	}
	activated := e.clk.Now()
	_, err := e.svc.Activate(tenantA, c.ID)
	mustOK(t, err)
	bs := e.backups(c.ID)
	wantCreated(t, bs, activated)
	b := bs[0]
	if b.State != cloudhsm.BackupCreateInProgress || b.HsmType != cloudhsm.HsmTypeHsm2m || b.Mode != cloudhsm.ModeFIPS ||
		b.ClusterCertificate == "" || b.ClusterCertificate != e.cluster(c.ID).ClusterCertificate || !slices.Equal(b.Tags, []cloudhsm.Tag{{Key: "team", Value: "x"}}) {
		t.Fatalf("activation backup: %+v", b)
	}
	e.advance(d.BackupCreate - time.Millisecond)
	if got := e.backup(tenantA, b.ID).State; got != cloudhsm.BackupCreateInProgress {
		t.Fatalf("backup %s before BackupCreate", got)
	}
	e.advance(time.Millisecond)
	if got := e.backup(tenantA, b.ID).State; got != cloudhsm.BackupReady {
		t.Fatalf("backup %s after BackupCreate", got)
	}
	// Every 6 hours (the configured interval), counted from the last backup.
	e.advance(6*time.Hour - d.BackupCreate)
	wantCreated(t, e.backups(c.ID), activated, activated.Add(6*time.Hour))
	// An HSM added: a backup once it is ACTIVE.
	added := e.clk.Now()
	h2 := e.createHsm(c.ID, 1)
	e.advance(d.HsmCreate)
	wantCreated(t, e.backups(c.ID), activated, activated.Add(6*time.Hour), added.Add(d.HsmCreate))
	// Both HSMs removed: a backup at each DeleteHsm.
	e.advance(time.Hour)
	removed := e.clk.Now()
	e.deleteHsm(c.ID, h.ID)
	e.deleteHsm(c.ID, h2.ID)
	want := []time.Time{activated, activated.Add(6 * time.Hour), added.Add(d.HsmCreate), removed, removed}
	wantCreated(t, e.backups(c.ID), want...)
	// No HSM left: no scheduled backup.
	e.advance(3 * day)
	wantCreated(t, e.backups(c.ID), want...)
}

// A cluster restored from a backup is ACTIVE with no HSM: no backup until
// it has one.
func TestNoBackupWithoutHsm(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	src, _ := e.active()
	c := e.createCluster(func(in *cloudhsm.CreateClusterInput) { in.SourceBackupID = e.backups(src.ID)[0].ID })
	// Also when a snapshot says a backup is due.
	imported := snapCluster(tenantA, cloudhsm.HsmTypeHsm2m, cloudhsm.ClusterActive, 0, "")
	imported.NextBackup = t0.Add(day)
	importedID := e.importCluster(imported)
	e.advance(3 * day)
	e.wantClusterState(c.ID, cloudhsm.ClusterActive)
	for _, id := range []string{c.ID, importedID} {
		if bs := e.backups(id); len(bs) != 0 {
			t.Fatalf("an ACTIVE cluster without HSMs was backed up: %v", states(bs))
		}
	}
	e.createHsm(c.ID, 0)
	e.advance(testDelays().HsmCreate)
	if bs := e.backups(c.ID); len(bs) != 1 {
		t.Fatalf("first HSM of a restored cluster: %d backups, want 1", len(bs))
	}
}

// Retention is 7 to 379 days, 90 when not given, on CreateCluster and
// ModifyCluster.
func TestRetentionBounds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct{ days, want int }{{0, 90}, {6, -1}, {7, 7}, {379, 379}, {380, -1}, {-1, -1}} {
		t.Run(fmt.Sprint(tc.days), func(t *testing.T) {
			c, err := e.createClusterIn(tenantA, func(in *cloudhsm.CreateClusterInput) { in.RetentionDays = tc.days })
			if tc.want < 0 {
				wantErr(t, err, cloudhsm.KindInvalidRequest, "between 7 and 379 days", fmt.Sprint(tc.days))
				return
			}
			if err != nil || c.RetentionDays != tc.want {
				t.Fatalf("retention %d: %v", tc.days, err)
			}
			if tc.days == 0 {
				return
			}
			_, err = e.svc.ModifyCluster(tenantA, cloudhsm.ModifyClusterInput{ClusterID: c.ID, RetentionDays: tc.days})
			mustOK(t, err)
		})
	}
	c := e.createCluster()
	for _, days := range []int{6, 380} {
		_, err := e.svc.ModifyCluster(tenantA, cloudhsm.ModifyClusterInput{ClusterID: c.ID, RetentionDays: days})
		wantErr(t, err, cloudhsm.KindInvalidRequest, "between 7 and 379 days")
	}
}

// A backup older than the retention goes PENDING_DELETION (purged by the
// service) at Created + retention, stays there 7 days, is DELETED, and is
// gone after DeletedRetention; newer backups stay READY.
func TestBackupsExpireByRetention(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.active(func(in *cloudhsm.CreateClusterInput) { in.RetentionDays = 7 })
	b0 := e.backups(c.ID)[0]
	expiry := b0.Created.Add(7 * day)
	e.advance(expiry.Add(-time.Millisecond).Sub(e.clk.Now()))
	if got := e.backup(tenantA, b0.ID); got.State != cloudhsm.BackupReady {
		t.Fatalf("backup %s before its retention ended", got.State)
	}
	e.advance(time.Millisecond)
	got := e.backup(tenantA, b0.ID)
	if got.State != cloudhsm.BackupPendingDeletion || !got.PurgedByService || !got.DeleteTimestamp.Equal(expiry.Add(7*day)) {
		t.Fatalf("expired backup: %s, purged %v, DeleteTimestamp %v", got.State, got.PurgedByService, got.DeleteTimestamp)
	}
	// The daily backups of days 1-6 are READY; day 7's is being made.
	want := []string{cloudhsm.BackupPendingDeletion}
	for range 6 {
		want = append(want, cloudhsm.BackupReady)
	}
	want = append(want, cloudhsm.BackupCreateInProgress)
	if got := states(e.backups(c.ID)); !slices.Equal(got, want) {
		t.Fatalf("backups after one retention: %v, want %v", got, want)
	}
	e.advance(7*day - time.Millisecond)
	if got := e.backup(tenantA, b0.ID).State; got != cloudhsm.BackupPendingDeletion {
		t.Fatalf("backup %s before the 7-day window ended", got)
	}
	e.advance(time.Millisecond)
	if got := e.backup(tenantA, b0.ID).State; got != cloudhsm.BackupDeleted {
		t.Fatalf("backup %s after the 7-day window", got)
	}
	e.advance(time.Hour)
	if e.backup(tenantA, b0.ID) != nil {
		t.Fatal("DELETED backup still listed after DeletedRetention")
	}
}

// The service never deletes a cluster's last backup, also once the
// cluster is gone; a newer backup pending deletion does not count as the
// last, and restoring it lets the older one expire.
func TestLastBackupNeverExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, h := e.active(func(in *cloudhsm.CreateClusterInput) { in.RetentionDays = 7 })
	e.deleteHsm(c.ID, h.ID) // the removal backup: b1; then no HSM, no more backups
	bs := e.backups(c.ID)
	if len(bs) != 2 {
		t.Fatalf("%d backups, want the activation and the removal backups", len(bs))
	}
	b0, b1 := bs[0].ID, bs[1].ID
	e.advance(day)
	_, err := e.svc.DeleteBackup(tenantA, b1)
	mustOK(t, err)
	e.advance(6*day + time.Hour) // b0's retention is over; b1 pending deletion is not "the last"
	if got := states(e.backups(c.ID)); !slices.Equal(got, []string{cloudhsm.BackupReady, cloudhsm.BackupPendingDeletion}) {
		t.Fatalf("backups %v, want the older kept READY while the newer is pending deletion", got)
	}
	_, err = e.svc.RestoreBackup(tenantA, b1)
	mustOK(t, err)
	if got := states(e.backups(c.ID)); !slices.Equal(got, []string{cloudhsm.BackupPendingDeletion, cloudhsm.BackupReady}) {
		t.Fatalf("after restoring the newer backup: %v, want the older expired", got)
	}
	e.advance(time.Hour)
	_, err = e.svc.DeleteCluster(tenantA, c.ID)
	mustOK(t, err)
	e.advance(400 * day)
	if got := e.backup(tenantA, b1); got == nil || got.State != cloudhsm.BackupReady {
		t.Fatalf("the last backup of a deleted cluster expired: %+v", got)
	}
	if e.backup(tenantA, b0) != nil {
		t.Fatal("the expired backup is still listed")
	}
}

// DeleteBackup: READY -> PENDING_DELETION for 7 days (restorable) ->
// DELETED -> gone; each operation only from its state.
func TestDeleteAndRestoreBackup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.active()
	id := e.backups(c.ID)[0].ID
	del, err := e.svc.DeleteBackup(tenantA, id)
	mustOK(t, err)
	if del.State != cloudhsm.BackupPendingDeletion || !del.DeleteTimestamp.Equal(e.clk.Now().Add(7*day)) || del.PurgedByService {
		t.Fatalf("DeleteBackup answered %s, DeleteTimestamp %v, purged %v", del.State, del.DeleteTimestamp, del.PurgedByService)
	}
	_, err = e.svc.DeleteBackup(tenantA, id)
	wantErr(t, err, cloudhsm.KindInvalidRequest, "only a READY backup can be deleted")
	res, err := e.svc.RestoreBackup(tenantA, id)
	mustOK(t, err)
	if res.State != cloudhsm.BackupReady || !res.DeleteTimestamp.IsZero() {
		t.Fatalf("RestoreBackup answered %s, DeleteTimestamp %v", res.State, res.DeleteTimestamp)
	}
	_, err = e.svc.RestoreBackup(tenantA, id)
	wantErr(t, err, cloudhsm.KindInvalidRequest, "only a backup in PENDING_DELETION can be restored")
	_, err = e.svc.DeleteBackup(tenantA, id)
	mustOK(t, err)
	e.advance(7*day - time.Millisecond)
	if got := e.backup(tenantA, id).State; got != cloudhsm.BackupPendingDeletion {
		t.Fatalf("%s before the window ended", got)
	}
	e.advance(time.Millisecond)
	if got := e.backup(tenantA, id).State; got != cloudhsm.BackupDeleted {
		t.Fatalf("%s after the window", got)
	}
	for name, err := range map[string]error{
		"RestoreBackup":          second(e.svc.RestoreBackup(tenantA, id)),
		"DeleteBackup":           second(e.svc.DeleteBackup(tenantA, id)),
		"ModifyBackupAttributes": second(e.svc.ModifyBackupAttributes(tenantA, id, true)),
		"CopyBackupToRegion":     second(e.svc.CopyBackupToRegion(tenantA, id, region2, nil, false)),
		"CreateCluster":          second(e.createClusterIn(tenantA, func(in *cloudhsm.CreateClusterInput) { in.SourceBackupID = id })),
	} {
		t.Run(name, func(t *testing.T) { wantErr(t, err, cloudhsm.KindInvalidRequest, "DELETED") })
	}
	e.advance(time.Hour)
	_, err = e.svc.RestoreBackup(tenantA, id)
	wantErr(t, err, cloudhsm.KindNotFound, id)
}

// A backup the service purged can be restored; past its retention it
// gets a day (BackupInterval) before retention takes it again.
func TestRestorePurgedBackup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.active(func(in *cloudhsm.CreateClusterInput) { in.RetentionDays = 7 })
	b0 := e.backups(c.ID)[0]
	e.advance(b0.Created.Add(7 * day).Sub(e.clk.Now()))
	if got := e.backup(tenantA, b0.ID); !got.PurgedByService {
		t.Fatalf("backup not purged: %s", got.State)
	}
	res, err := e.svc.RestoreBackup(tenantA, b0.ID)
	mustOK(t, err)
	if res.State != cloudhsm.BackupReady || res.PurgedByService {
		t.Fatalf("RestoreBackup answered %s, purged %v", res.State, res.PurgedByService)
	}
	e.advance(day - time.Millisecond)
	if got := e.backup(tenantA, b0.ID).State; got != cloudhsm.BackupReady {
		t.Fatalf("restored backup %s within its day of grace", got)
	}
	e.advance(time.Millisecond)
	if got := e.backup(tenantA, b0.ID).State; got != cloudhsm.BackupPendingDeletion {
		t.Fatalf("restored backup %s after its day of grace", got)
	}
}

// NeverExpires exempts a backup from retention; clearing it lets
// retention take it at once when it is past.
func TestNeverExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.active(func(in *cloudhsm.CreateClusterInput) { in.RetentionDays = 7 })
	b0 := e.backups(c.ID)[0].ID
	got, err := e.svc.ModifyBackupAttributes(tenantA, b0, true)
	mustOK(t, err)
	if !got.NeverExpires || !got.ExpireAt.IsZero() {
		t.Fatalf("NeverExpires %v, retention due at %v (want never)", got.NeverExpires, got.ExpireAt)
	}
	e.advance(30 * day)
	if got := e.backup(tenantA, b0).State; got != cloudhsm.BackupReady {
		t.Fatalf("NeverExpires backup %s after 30 days (retention 7)", got)
	}
	never := true
	bs, _, err := e.svc.DescribeBackups(tenantA, cloudhsm.DescribeBackupsInput{Filter: cloudhsm.BackupFilter{NeverExpires: &never}, Limit: 50})
	mustOK(t, err)
	if len(bs) != 1 || bs[0].ID != b0 {
		t.Fatalf("neverExpires filter: %d backups", len(bs))
	}
	_, err = e.svc.ModifyBackupAttributes(tenantA, b0, false)
	mustOK(t, err)
	e.advance(time.Millisecond)
	if got := e.backup(tenantA, b0).State; got != cloudhsm.BackupPendingDeletion {
		t.Fatalf("backup %s once NeverExpires is cleared 30 days after it was taken", got)
	}
}

// CopyBackupToRegion: a copy in the destination region, CREATE_IN_PROGRESS
// for BackupCopy then READY, with the source's CreateTimestamp and tags
// (or the given ones); it never expires and can be restored there.
func TestCopyBackupToRegion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.active(func(in *cloudhsm.CreateClusterInput) {
		in.RetentionDays = 7
		in.Tags = []cloudhsm.Tag{{Key: "src", Value: "1"}}
	})
	src := e.backups(c.ID)[0]
	copiedAt := e.clk.Now()
	res, err := e.svc.CopyBackupToRegion(tenantA, src.ID, region2, nil, false)
	mustOK(t, err)
	if !res.CreateTimestamp.Equal(src.Created) || res.SourceRegion != region || res.SourceBackup != src.ID || res.SourceCluster != c.ID {
		t.Fatalf("CopyBackupToRegion answered %+v", res)
	}
	_, err = e.svc.CopyBackupToRegion(tenantA, src.ID, region2, []cloudhsm.Tag{{Key: "dst", Value: "2"}}, true)
	mustOK(t, err)
	dest := cloudhsm.Tenant{Account: acctA, Region: region2}
	copies, _, err := e.svc.DescribeBackups(dest, cloudhsm.DescribeBackupsInput{Filter: cloudhsm.BackupFilter{SourceIDs: []string{src.ID}}, Ascending: true, Limit: 50})
	mustOK(t, err)
	if len(copies) != 2 {
		t.Fatalf("%d copies in %s", len(copies), region2)
	}
	cp := copies[0]
	if cp.State != cloudhsm.BackupCreateInProgress || !cp.Created.Equal(src.Created) || !cp.CopyTimestamp.Equal(copiedAt) ||
		cp.SourceRegion != region || cp.SourceCluster != c.ID || cp.ClusterID != c.ID || cp.ClusterCertificate != src.ClusterCertificate ||
		!slices.Equal(cp.Tags, src.Tags) || !slices.Equal(copies[1].Tags, []cloudhsm.Tag{{Key: "dst", Value: "2"}}) {
		t.Fatalf("copies: %+v / tags %v", cp, copies[1].Tags)
	}
	if n := len(e.backups(c.ID)); n != 1 {
		t.Fatalf("the source region has %d backups of the cluster, want 1", n)
	}
	e.advance(testDelays().BackupCopy - time.Millisecond)
	if got := e.backup(dest, cp.ID).State; got != cloudhsm.BackupCreateInProgress {
		t.Fatalf("copy %s before BackupCopy", got)
	}
	e.advance(time.Millisecond)
	if got := e.backup(dest, cp.ID); got.State != cloudhsm.BackupReady || !got.ExpireAt.IsZero() {
		t.Fatalf("copy %s after BackupCopy, retention due at %v (want never)", got.State, got.ExpireAt)
	}
	e.advance(400 * day)
	if got := e.backup(dest, cp.ID); got == nil || got.State != cloudhsm.BackupReady {
		t.Fatalf("a copy expired: %+v", got)
	}
	if got := e.backup(tenantA, src.ID); got != nil && got.State == cloudhsm.BackupReady {
		t.Fatal("the source backup did not expire (retention 7): the check above proves nothing")
	}
	restored, err := e.createClusterIn(dest, func(in *cloudhsm.CreateClusterInput) { in.SourceBackupID = cp.ID })
	mustOK(t, err)
	if restored.ClusterCertificate != src.ClusterCertificate {
		t.Fatal("the copy does not carry the cluster certificate")
	}
}

// CopyBackupToRegion refuses its own region, unknown regions, crossing
// between GovCloud and standard regions, and backups that are not READY.
func TestCopyBackupToRegionRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	gov := cloudhsm.Tenant{Account: acctA, Region: "us-gov-west-1"}
	mustOK(t, e.svc.Import(&cloudhsm.Snapshot{Backups: []*cloudhsm.Backup{
		{Tenant: tenantA, ID: "backup-readyreadyr", ClusterID: "cluster-aaaaaaaaaaa"},
		{Tenant: tenantA, ID: "backup-pendingpend", ClusterID: "cluster-aaaaaaaaaaa", State: cloudhsm.BackupPendingDeletion},
		{Tenant: tenantA, ID: "backup-creatingcre", ClusterID: "cluster-aaaaaaaaaaa", State: cloudhsm.BackupCreateInProgress},
		{Tenant: gov, ID: "backup-govgovgovgo", ClusterID: "cluster-aaaaaaaaaaa"},
	}}))
	cases := []struct {
		name   string
		t      cloudhsm.Tenant
		id     string
		dest   string
		tags   []cloudhsm.Tag
		kind   cloudhsm.ErrorKind
		wanted string
	}{
		{"own region", tenantA, "backup-readyreadyr", region, nil, cloudhsm.KindInvalidRequest, "own region"},
		{"unknown region", tenantA, "backup-readyreadyr", "us-moon-1", nil, cloudhsm.KindInvalidRequest, "not a region"},
		{"standard to GovCloud", tenantA, "backup-readyreadyr", "us-gov-east-1", nil, cloudhsm.KindInvalidRequest, "GovCloud"},
		{"GovCloud to standard", gov, "backup-govgovgovgo", region, nil, cloudhsm.KindInvalidRequest, "GovCloud"},
		{"pending deletion", tenantA, "backup-pendingpend", region2, nil, cloudhsm.KindInvalidRequest, "only a READY backup can be copied"},
		{"being created", tenantA, "backup-creatingcre", region2, nil, cloudhsm.KindInvalidRequest, "only a READY backup can be copied"},
		{"unknown backup", tenantA, "backup-aaaaaaaaaaa", region2, nil, cloudhsm.KindNotFound, "not found"},
		{"duplicate tag keys", tenantA, "backup-readyreadyr", region2, []cloudhsm.Tag{{Key: "a"}, {Key: "a"}}, cloudhsm.KindTag, "Duplicate tag key"},
		{"reserved tag key", tenantA, "backup-readyreadyr", region2, []cloudhsm.Tag{{Key: "aws:x"}}, cloudhsm.KindTag, "reserved"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.CopyBackupToRegion(tc.t, tc.id, tc.dest, tc.tags, tc.tags != nil)
			wantErr(t, err, tc.kind, tc.wanted)
		})
	}
	if _, err := e.svc.CopyBackupToRegion(gov, "backup-govgovgovgo", "us-gov-east-1", nil, false); err != nil {
		t.Fatalf("GovCloud West to East: %v", err)
	}
}

// A retention change applies to the cluster's existing backups: lowered,
// those already past it expire at once (never the last); raised, the
// others live longer.
func TestRetentionChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.active()
	e.advance(10 * day) // the activation backup and ten daily ones, all READY
	_, err := e.svc.ModifyCluster(tenantA, cloudhsm.ModifyClusterInput{ClusterID: c.ID, RetentionDays: 7})
	mustOK(t, err)
	e.advance(time.Millisecond)
	now := e.clk.Now()
	for _, b := range e.backups(c.ID) {
		past := !b.Created.Add(7 * day).After(now)
		if got := b.State; (got == cloudhsm.BackupPendingDeletion) != past {
			t.Fatalf("backup of day %v is %s after retention became 7 days", b.Created.Sub(t0)/day, got)
		}
	}
	_, err = e.svc.ModifyCluster(tenantA, cloudhsm.ModifyClusterInput{ClusterID: c.ID, RetentionDays: 30})
	mustOK(t, err)
	kept := e.backups(c.ID)[4] // taken on day 4: within 7 days, and 30
	e.advance(10 * day)
	if got := e.backup(tenantA, kept.ID).State; got != cloudhsm.BackupReady {
		t.Fatalf("backup %s, 16 days old, under a 30-day retention", got)
	}
}
