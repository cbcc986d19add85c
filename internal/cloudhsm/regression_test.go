package cloudhsm_test

// Rules the domain once broke (found when these tests were written). Each
// test states the invariant, not the fix, so that any correct fix passes.

import (
	"slices"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
)

// An ACTIVE cluster with HSMs is backed up every BackupInterval (README,
// Behaviour, Time: "One clock drives every transition, scheduled backup
// and expiry"; aws-behaviour.md §4: "at least every 24 h"), also once a
// migration ends. The scheduled backup that fell due while the cluster
// was MODIFY_IN_PROGRESS cleared the schedule, and nothing set it again
// when the cluster was ACTIVE: no scheduled backup ever after. It
// happens when a step lasts longer than the interval
// (cloudhsmlocal.WithDelay(25*time.Hour) reaches it), and for a migrating
// cluster imported without NextBackup whose last step takes no backup.
func TestScheduledBackupsResumeAfterMigration(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config func(*cloudhsm.Config)
		start  func(e *env) string
	}{
		{"a step longer than the interval", func(c *cloudhsm.Config) { c.Delays.ModifyPerHsm = 30 * time.Hour }, func(e *env) string { return e.migrating(2) }},
		{"imported while migrating", func(*cloudhsm.Config) {}, func(e *env) string {
			c := snapCluster(tenantA, cloudhsm.HsmTypeHsm1, cloudhsm.ClusterModifyInProgress, 1, cloudhsm.HsmActive)
			c.TargetHsmType, c.PreviousHsmType, c.HsmTypeRollbackExpiration = cloudhsm.HsmTypeHsm2m, cloudhsm.HsmTypeHsm1, t0.Add(day)
			return e.importCluster(c)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.config)
			id := tc.start(e)
			for e.cluster(id).State != cloudhsm.ClusterActive {
				e.advance(time.Hour)
				if e.clk.Now().After(t0.Add(10 * day)) {
					t.Fatalf("the migration never ended: %s", e.cluster(id).State)
				}
			}
			active, before := e.clk.Now(), len(e.backups(id))
			e.advance(3 * day)
			if n := len(e.backups(id)) - before; n < 3 {
				t.Fatalf("ACTIVE with %d HSM(s) since %s (the migration ended): %d backups in the 3 days after, want at least 3 (one every 24 h); NextBackup is %v",
					len(e.cluster(id).Hsms), active.Sub(t0), n, e.cluster(id).NextBackup)
			}
		})
	}
}

// An in-progress state imported without Due resumes one delay after the
// import (docs/admin-api.md, import: "An in-progress state ... without a
// Due time resumes: its transition falls due one delay of the timing
// profile after the import"). fillCluster resumed
// MODIFY_IN_PROGRESS but not ROLLBACK_IN_PROGRESS: the cluster stays
// ROLLBACK_IN_PROGRESS for ever.
func TestImportedRollbackResumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := snapCluster(tenantA, cloudhsm.HsmTypeHsm2m, cloudhsm.ClusterRollbackInProgress, 2, cloudhsm.HsmActive)
	c.TargetHsmType, c.PreviousHsmType, c.HsmTypeRollbackExpiration = cloudhsm.HsmTypeHsm1, cloudhsm.HsmTypeHsm1, t0.Add(day)
	id := e.importCluster(c)
	e.advance(2 * testDelays().ModifyPerHsm) // one step per HSM
	got := e.cluster(id)
	if got.State != cloudhsm.ClusterActive || got.HsmType != cloudhsm.HsmTypeHsm1 {
		t.Fatalf("imported ROLLBACK_IN_PROGRESS cluster (2 HSMs), two steps later: %s %s, Due %v; want ACTIVE hsm1.medium",
			got.State, got.HsmType, got.Due)
	}
}

// Import refuses what the service could never hold, naming the item and
// field (docs/admin-api.md, import). A cluster MODIFY_IN_PROGRESS without
// TargetHsmType was accepted, and its migration then ended with the
// cluster and its HSMs of HsmType "" (the model's HsmType pattern,
// hsm[0-9]..., allows no such value).
func TestImportedMigrationNeedsATarget(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := snapCluster(tenantA, cloudhsm.HsmTypeHsm1, cloudhsm.ClusterModifyInProgress, 2, cloudhsm.HsmActive)
	err := e.svc.Import(&cloudhsm.Snapshot{Clusters: []*cloudhsm.Cluster{c}})
	if err != nil {
		wantErr(t, err, cloudhsm.KindInvalidRequest, "clusters[0]", "TargetHsmType")
		return
	}
	e.advance(2 * day)
	got := e.cluster(c.ID)
	valid := []string{cloudhsm.HsmTypeHsm1, cloudhsm.HsmTypeHsm2m}
	if !slices.Contains(valid, got.HsmType) || slices.ContainsFunc(got.Hsms, func(h *cloudhsm.Hsm) bool { return !slices.Contains(valid, h.HsmType) }) {
		t.Fatalf("imported MODIFY_IN_PROGRESS without TargetHsmType was accepted and became %s with HsmType %q, HSM types %q",
			got.State, got.HsmType, hsmTypes(got))
	}
}

// HSM ids are unique across the clusters of an account (aws-behaviour.md
// §8: Terraform's HSM finder scans every cluster's Hsms for the id, "so
// HSM ids must be unique across clusters"). Import checks repeats only
// within the snapshot: an HSM id of another cluster already held is
// accepted, and the account then listed two HSMs with one id.
func TestImportKeepsHsmIDsUnique(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	held := snapCluster(tenantA, cloudhsm.HsmTypeHsm2m, cloudhsm.ClusterActive, 1, cloudhsm.HsmActive)
	held.Hsms[0].ID = "hsm-aaaaaaaaaaa"
	e.importCluster(held)
	other := snapCluster(tenantA, cloudhsm.HsmTypeHsm2m, cloudhsm.ClusterActive, 1, cloudhsm.HsmActive)
	other.Hsms[0].ID = "hsm-aaaaaaaaaaa"
	other.Hsms[0].EniIP = "10.9.1.200"
	err := e.svc.Import(&cloudhsm.Snapshot{Clusters: []*cloudhsm.Cluster{other}})
	if err != nil {
		wantErr(t, err, cloudhsm.KindInvalidRequest, "clusters[0]", "hsm-aaaaaaaaaaa")
	}
	cs, _, err := e.describe(tenantA, cloudhsm.ClusterFilter{}, 25)
	mustOK(t, err)
	seen := map[string]string{}
	for _, c := range cs {
		for _, h := range c.Hsms {
			if first, dup := seen[h.ID]; dup {
				t.Fatalf("HSM id %s is listed in cluster %s and in cluster %s of the same account", h.ID, first, c.ID)
			}
			seen[h.ID] = c.ID
		}
	}
}
