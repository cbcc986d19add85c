package cloudhsm_test

// HsmType migration (hsm1.medium -> hsm2m.medium) and its rollback, and
// DEGRADED, which keeps the rules of the state under it.

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
)

// hsmTypes lists the cluster's HSMs' types.
func hsmTypes(c *cloudhsm.Cluster) []string {
	out := make([]string, len(c.Hsms))
	for i, h := range c.Hsms {
		out[i] = h.HsmType
	}
	return out
}

func (e *env) modifyType(id, hsmType string) (*cloudhsm.Cluster, error) {
	return e.svc.ModifyCluster(tenantA, cloudhsm.ModifyClusterInput{ClusterID: id, HsmType: hsmType})
}

// migrating imports an ACTIVE hsm1.medium cluster with n ACTIVE HSMs and
// starts its migration to hsm2m.medium.
func (e *env) migrating(n int) string {
	e.t.Helper()
	id := e.importCluster(snapCluster(tenantA, cloudhsm.HsmTypeHsm1, cloudhsm.ClusterActive, n, cloudhsm.HsmActive))
	c, err := e.modifyType(id, cloudhsm.HsmTypeHsm2m)
	if err != nil {
		e.t.Fatalf("ModifyCluster HsmType: %v", err)
	}
	if c.State != cloudhsm.ClusterModifyInProgress || c.TargetHsmType != cloudhsm.HsmTypeHsm2m || c.PreviousHsmType != cloudhsm.HsmTypeHsm1 ||
		!c.HsmTypeRollbackExpiration.Equal(e.clk.Now().Add(day)) {
		e.t.Fatalf("ModifyCluster HsmType answered %s, target %s, previous %s, rollback until %v", c.State, c.TargetHsmType, c.PreviousHsmType, c.HsmTypeRollbackExpiration)
	}
	return id
}

// The migration replaces one HSM per ModifyPerHsm, with a backup before
// each; then the cluster is ACTIVE with the new type.
func TestHsmTypeMigration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	step := testDelays().ModifyPerHsm
	id := e.migrating(3)
	h1, h2 := cloudhsm.HsmTypeHsm1, cloudhsm.HsmTypeHsm2m
	prev := []string{h1, h1, h1}
	for i, want := range [][]string{{h2, h1, h1}, {h2, h2, h1}} {
		if n := len(e.backups(id)); n != i+1 {
			t.Fatalf("step %d: %d backups, want %d (one before each HSM)", i+1, n, i+1)
		}
		e.advance(step - time.Millisecond)
		if got := hsmTypes(e.cluster(id)); !slices.Equal(got, prev) {
			t.Fatalf("just before step %d: HSMs %v, want %v", i+1, got, prev)
		}
		e.advance(time.Millisecond)
		c := e.wantClusterState(id, cloudhsm.ClusterModifyInProgress)
		if got := hsmTypes(c); !slices.Equal(got, want) || c.HsmType != h1 {
			t.Fatalf("after step %d: HSMs %v, cluster %s", i+1, got, c.HsmType)
		}
		prev = want
	}
	e.advance(step)
	c := e.wantClusterState(id, cloudhsm.ClusterActive)
	if got := hsmTypes(c); !slices.Equal(got, []string{h2, h2, h2}) || c.HsmType != h2 || c.TargetHsmType != "" {
		t.Fatalf("migrated: HSMs %v, cluster %s, target %q", got, c.HsmType, c.TargetHsmType)
	}
	if n := len(e.backups(id)); n != 3 {
		t.Fatalf("%d backups for 3 HSMs, want 3", n)
	}
	for _, b := range e.backups(id) {
		if b.HsmType != h1 {
			t.Fatalf("a backup before a step has type %s", b.HsmType)
		}
	}
}

// While migrating, a cluster refuses another target, HSM changes and
// deletion; asking for the running target again changes nothing.
func TestMigrationRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.migrating(2)
	hsmID := e.cluster(id).Hsms[0].ID
	before := len(e.backups(id))
	if c, err := e.modifyType(id, cloudhsm.HsmTypeHsm2m); err != nil || c.State != cloudhsm.ClusterModifyInProgress {
		t.Fatalf("the running target again: %v", err)
	}
	if n := len(e.backups(id)); n != before {
		t.Fatalf("asking again took a backup (%d -> %d)", before, n)
	}
	for name, err := range map[string]error{
		"rollback during the migration": second(e.modifyType(id, cloudhsm.HsmTypeHsm1)),
		"DeleteHsm":                     second(e.svc.DeleteHsm(tenantA, cloudhsm.DeleteHsmInput{ClusterID: id, HsmID: hsmID})),
		"CreateHsm":                     second(e.svc.CreateHsm(context.Background(), tenantA, cloudhsm.CreateHsmInput{ClusterID: id, AZ: testSubnet.AZ})),
		"DeleteCluster":                 second(e.svc.DeleteCluster(tenantA, id)),
	} {
		t.Run(name, func(t *testing.T) { wantErr(t, err, cloudhsm.KindInvalidRequest) })
	}
	_, err := e.modifyType(id, cloudhsm.HsmTypeHsm1)
	wantErr(t, err, cloudhsm.KindInvalidRequest, "until that completes")
	_, err = e.svc.DeleteHsm(tenantA, cloudhsm.DeleteHsmInput{ClusterID: id, HsmID: hsmID})
	wantErr(t, err, cloudhsm.KindInvalidRequest, "MODIFY_IN_PROGRESS")
}

// Only hsm1.medium -> hsm2m.medium, only from ACTIVE with every HSM ACTIVE.
func TestMigrationPreconditions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		name    string
		cluster *cloudhsm.Cluster
		target  string
		want    string
	}{
		{"hsm2m to hsm1", snapCluster(tenantA, cloudhsm.HsmTypeHsm2m, cloudhsm.ClusterActive, 1, cloudhsm.HsmActive), cloudhsm.HsmTypeHsm1, "the only supported migration"},
		{"to an unknown type", snapCluster(tenantA, cloudhsm.HsmTypeHsm1, cloudhsm.ClusterActive, 1, cloudhsm.HsmActive), "hsm9.big", "the only supported migration"},
		{"not ACTIVE", snapCluster(tenantA, cloudhsm.HsmTypeHsm1, cloudhsm.ClusterInitialized, 1, cloudhsm.HsmActive), cloudhsm.HsmTypeHsm2m, "only while it is ACTIVE"},
		{"DEGRADED", degradedSnap(cloudhsm.HsmTypeHsm1), cloudhsm.HsmTypeHsm2m, "only while it is ACTIVE"},
		{"an HSM being created", snapCluster(tenantA, cloudhsm.HsmTypeHsm1, cloudhsm.ClusterActive, 1, cloudhsm.HsmCreateInProgress), cloudhsm.HsmTypeHsm2m, "every HSM must be ACTIVE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := e.on(t)
			id := e.importCluster(tc.cluster)
			_, err := e.modifyType(id, tc.target)
			wantErr(t, err, cloudhsm.KindInvalidRequest, tc.want)
			if c := e.cluster(id); c.TargetHsmType != "" || slices.Contains(hsmTypes(c), tc.target) {
				t.Fatalf("a refused migration started: target %q", c.TargetHsmType)
			}
		})
	}
}

// degradedSnap is an ACTIVE cluster with one HSM DEGRADED.
func degradedSnap(hsmType string) *cloudhsm.Cluster {
	c := snapCluster(tenantA, hsmType, cloudhsm.ClusterDegraded, 2, cloudhsm.HsmActive)
	c.StateBeforeDegraded = cloudhsm.ClusterActive
	c.Hsms[0].State = cloudhsm.HsmDegraded
	return c
}

// Rollback: allowed once the migration completed and until 24 hours after
// it started (ROLLBACK_IN_PROGRESS, one HSM per step, a backup before
// each), refused from then on.
func TestMigrationRollbackWindow(t *testing.T) {
	step := testDelays().ModifyPerHsm
	for _, tc := range []struct {
		after time.Duration // since the migration started
		ok    bool
	}{{2 * step, true}, {day - time.Millisecond, true}, {day, false}, {3 * day, false}} {
		t.Run(fmt.Sprint(tc.after), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.migrating(2)
			started := e.clk.Now()
			e.advance(tc.after)
			e.wantClusterState(id, cloudhsm.ClusterActive)
			backups := len(e.backups(id))
			c, err := e.modifyType(id, cloudhsm.HsmTypeHsm1)
			if !tc.ok {
				wantErr(t, err, cloudhsm.KindInvalidRequest, "rollback window", started.Add(day).Format(time.RFC3339))
				return
			}
			if err != nil || c.State != cloudhsm.ClusterRollbackInProgress || c.TargetHsmType != cloudhsm.HsmTypeHsm1 {
				t.Fatalf("rollback: %v", err)
			}
			if n := len(e.backups(id)); n != backups+1 {
				t.Fatalf("rollback started with %d new backups, want 1", n-backups)
			}
			e.advance(step)
			if got := e.wantClusterState(id, cloudhsm.ClusterRollbackInProgress); got.Hsms[1].HsmType != cloudhsm.HsmTypeHsm2m {
				t.Fatalf("after one step of 2: %v", hsmTypes(got))
			}
			e.advance(step)
			got := e.wantClusterState(id, cloudhsm.ClusterActive)
			if got.HsmType != cloudhsm.HsmTypeHsm1 || !slices.Equal(hsmTypes(got), []string{cloudhsm.HsmTypeHsm1, cloudhsm.HsmTypeHsm1}) ||
				got.PreviousHsmType != "" || !got.HsmTypeRollbackExpiration.IsZero() {
				t.Fatalf("rolled back: %s %v, previous %q, expiration %v", got.HsmType, hsmTypes(got), got.PreviousHsmType, got.HsmTypeRollbackExpiration)
			}
			if n := len(e.backups(id)); n != backups+2 {
				t.Fatalf("rollback of 2 HSMs took %d backups, want 2", n-backups)
			}
		})
	}
}

// DEGRADED over ACTIVE: still ACTIVE's rules (HSMs can be added, backups
// are taken, on schedule too); healed, the cluster is ACTIVE again. With
// two degraded HSMs it heals with the last.
func TestDegradedActiveCluster(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := testDelays()
	c, h := e.active()
	got, err := e.svc.DegradeHsm(tenantA, c.ID, h.ID)
	mustOK(t, err)
	if got.State != cloudhsm.ClusterDegraded || got.Hsms[0].State != cloudhsm.HsmDegraded {
		t.Fatalf("DegradeHsm: cluster %s, HSM %s", got.State, got.Hsms[0].State)
	}
	_, err = e.svc.DegradeHsm(tenantA, c.ID, h.ID)
	wantErr(t, err, cloudhsm.KindInvalidRequest, "only an ACTIVE HSM can be degraded")
	n := len(e.backups(c.ID))
	h2 := e.createHsm(c.ID, 1)
	e.advance(d.HsmCreate)
	if got := len(e.backups(c.ID)); got != n+1 {
		t.Fatalf("an HSM added to a DEGRADED (ACTIVE) cluster took %d backups, want 1", got-n)
	}
	e.advance(day)
	if got := len(e.backups(c.ID)); got != n+2 {
		t.Fatalf("no scheduled backup under DEGRADED (%d new)", got-n)
	}
	_, err = e.svc.DegradeHsm(tenantA, c.ID, h2.ID)
	mustOK(t, err)
	_, err = e.svc.HealHsm(tenantA, c.ID, h.ID)
	mustOK(t, err)
	e.wantClusterState(c.ID, cloudhsm.ClusterDegraded)
	_, err = e.svc.HealHsm(tenantA, c.ID, h.ID)
	wantErr(t, err, cloudhsm.KindInvalidRequest, "only a DEGRADED HSM can be healed")
	_, err = e.svc.HealHsm(tenantA, c.ID, h2.ID)
	mustOK(t, err)
	e.wantClusterState(c.ID, cloudhsm.ClusterActive)
	_, err = e.svc.DegradeHsm(tenantA, c.ID, "hsm-aaaaaaaaaaa")
	wantErr(t, err, cloudhsm.KindNotFound, "hsm-aaaaaaaaaaa")
}

// Deleting the degraded HSM of an ACTIVE cluster takes a backup (ACTIVE's
// rule) and, once it is gone, the cluster leaves DEGRADED.
func TestDegradedHsmDeleted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, h := e.active()
	_, err := e.svc.DegradeHsm(tenantA, c.ID, h.ID)
	mustOK(t, err)
	n := len(e.backups(c.ID))
	e.deleteHsm(c.ID, h.ID)
	if got := len(e.backups(c.ID)); got != n+1 {
		t.Fatalf("DeleteHsm in a DEGRADED (ACTIVE) cluster took %d backups, want 1", got-n)
	}
	e.wantClusterState(c.ID, cloudhsm.ClusterDegraded)
	e.advance(testDelays().HsmDelete)
	e.wantClusterState(c.ID, cloudhsm.ClusterActive)
}

// DEGRADED over UNINITIALIZED: the CSR stays shown, a second HSM is
// refused with the first-HSM rule; healed, it is UNINITIALIZED.
func TestDegradedUninitializedCluster(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, h := e.uninitialized()
	_, err := e.svc.DegradeHsm(tenantA, c.ID, h.ID)
	mustOK(t, err)
	got := e.wantClusterState(c.ID, cloudhsm.ClusterDegraded)
	if err := csrOfHsm(got, h.ID); err != nil {
		t.Fatalf("DEGRADED over UNINITIALIZED: %v", err)
	}
	_, err = e.svc.CreateHsm(context.Background(), tenantA, cloudhsm.CreateHsmInput{ClusterID: c.ID, AZ: az(1)})
	wantErr(t, err, cloudhsm.KindInvalidRequest, "already contains an HSM but has not yet been fully activated")
	// The current choice: initialization waits until the HSM is healthy
	// (InitializeCluster looks at the state itself, DEGRADED).
	_, err = e.svc.InitializeCluster(tenantA, c.ID, e.ca.MustSign(t, got.Csr), e.ca.PEM)
	wantErr(t, err, cloudhsm.KindInvalidRequest, "is DEGRADED")
	_, err = e.svc.HealHsm(tenantA, c.ID, h.ID)
	mustOK(t, err)
	e.wantClusterState(c.ID, cloudhsm.ClusterUninitialized)
}

// DEGRADED over an in-progress state: the timed transitions go on under
// it (INITIALIZE_IN_PROGRESS -> INITIALIZED -> ACTIVE, the activation
// backup taken); healing returns to the state reached.
func TestDegradedKeepsTransitions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := testDelays()
	c, h := e.uninitialized()
	e.initialize(c.ID)
	_, err := e.svc.DegradeHsm(tenantA, c.ID, h.ID)
	mustOK(t, err)
	e.advance(d.ClusterInitialize)
	got := e.wantClusterState(c.ID, cloudhsm.ClusterDegraded)
	if got.StateBeforeDegraded != cloudhsm.ClusterInitialized {
		t.Fatalf("under DEGRADED: %s, want INITIALIZED", got.StateBeforeDegraded)
	}
	e.advance(d.ClusterActivate)
	e.wantClusterState(c.ID, cloudhsm.ClusterDegraded)
	if n := len(e.backups(c.ID)); n != 1 {
		t.Fatalf("activation under DEGRADED took %d backups, want 1", n)
	}
	_, err = e.svc.HealHsm(tenantA, c.ID, h.ID)
	mustOK(t, err)
	e.wantClusterState(c.ID, cloudhsm.ClusterActive)
}
