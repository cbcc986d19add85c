package cloudhsm

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/model"
)

// modelString checks v against the service model's string shape (its
// pattern and lengths: one table for the API and for imports).
func modelString(shape, v string) ([]string, error) {
	m, err := model.Load()
	if err != nil {
		return nil, err
	}
	return m.CheckString(shape, v)
}

// HsmStates lists every HSM state.
var HsmStates = []string{HsmCreateInProgress, HsmActive, HsmDegraded, HsmDeleteInProgress, HsmDeleted}

// The times a snapshot may hold: the AWS JSON encoder and the scheduler
// (Unix nanoseconds) handle these; AWS never returns others.
var (
	minSnapshotTime = time.Unix(0, 0)
	maxSnapshotTime = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
)

// checkSnapshot refuses what the real service could never hold, naming the
// item and field, before Import spends time on keys or touches the state.
// Fields left empty are not checked: Import fills them. Fields are named as
// docs/snapshot-format.md names them: that is what users write.
func checkSnapshot(snap *Snapshot) error {
	clusters, backups := snapshotIDs{}, snapshotIDs{}
	hsms := map[string]string{}
	for i, c := range snap.Clusters {
		where := itemName("clusters", i, c.ID)
		if err := checkCluster(c, where); err != nil {
			return err
		}
		if err := clusters.add("clusters", "clusterId", i, c.Tenant, c.ID, where); err != nil {
			return err
		}
		for j, h := range c.Hsms {
			if h.ID == "" {
				continue
			}
			at := fmt.Sprintf("clusters[%d].hsms[%d]", i, j)
			if other, dup := hsms[h.ID]; dup {
				return errf(KindInvalidRequest, "%s: hsmId %s is also the id of %s; HSM ids appear once per snapshot", at, h.ID, other)
			}
			hsms[h.ID] = at
		}
	}
	for i, b := range snap.Backups {
		where := itemName("backups", i, b.ID)
		if err := checkBackup(b, where); err != nil {
			return err
		}
		if err := backups.add("backups", "backupId", i, b.Tenant, b.ID, where); err != nil {
			return err
		}
	}
	return nil
}

// itemName names item i of a snapshot list in refusals: "clusters[0] (cluster-...)".
func itemName(list string, i int, id string) string {
	if id == "" {
		return fmt.Sprintf("%s[%d]", list, i)
	}
	return fmt.Sprintf("%s[%d] (%s)", list, i, id)
}

// tenantItem is a resource id within its tenant.
type tenantItem struct {
	t  Tenant
	id string
}

// snapshotIDs records the index of each (tenant, id) of one snapshot list.
type snapshotIDs map[tenantItem]int

// add records item i of list, refusing an id (field) an earlier item has
// (an empty id is made by Import, so never a duplicate).
func (seen snapshotIDs) add(list, field string, i int, t Tenant, id, where string) error {
	if id == "" {
		return nil
	}
	k := tenantItem{t, id}
	if j, dup := seen[k]; dup {
		return errf(KindInvalidRequest, "%s: %s %s is also the id of %s[%d] in %s/%s; ids appear once per snapshot", where, field, id, list, j, t.Account, t.Region)
	}
	seen[k] = i
	return nil
}

func checkTenant(t Tenant, where string) error {
	if t.Account == "" || t.Region == "" {
		return errf(KindInvalidRequest, "%s: account and region are required", where)
	}
	if !accountRe.MatchString(t.Account) {
		return errf(KindInvalidRequest, "%s: account %q is not a 12-digit AWS account id", where, t.Account)
	}
	if !KnownRegion(t.Region) {
		return errf(KindInvalidRequest, "%s: region %q is not an AWS region", where, t.Region)
	}
	return nil
}

// checkID checks an id against the model's shape (ClusterId, HsmId,
// BackupId).
func checkID(shape, id, field, where string) error {
	if id == "" {
		return nil
	}
	fails, err := modelString(shape, id)
	if err != nil {
		return err
	}
	if len(fails) > 0 {
		return errf(KindInvalidRequest, "%s: %s %q is not a valid %s: %s (leave it out to have one made)", where, field, id, shape, strings.Join(fails, "; "))
	}
	return nil
}

func checkOneOf(v, field, where string, allowed ...string) error {
	if v != "" && !slices.Contains(allowed, v) {
		return errf(KindInvalidRequest, "%s: %s %q is not one of %s", where, field, v, strings.Join(allowed, ", "))
	}
	return nil
}

func checkTimes(where string, times map[string]time.Time) error {
	for field, t := range times {
		if !t.IsZero() && (t.Before(minSnapshotTime) || !t.Before(maxSnapshotTime)) {
			return errf(KindInvalidRequest, "%s: %s %s is outside the times the service handles (1970 to 2261)", where, field, t.UTC().Format(time.RFC3339Nano))
		}
	}
	return nil
}

func checkRetentionField(days int, where string) error {
	if days != 0 && CheckRetention(days) != nil {
		return errf(KindInvalidRequest, "%s: backupRetentionDays %d is outside %d to %d (leave it out for the default, %d)", where, days, MinRetentionDays, MaxRetentionDays, DefaultRetentionDays)
	}
	return nil
}

// checkSnapshotTags applies the rules of TagResource and the model's tag
// constraints.
func checkSnapshotTags(tags []Tag, where string) error {
	if len(tags) > MaxTags {
		return errf(KindInvalidRequest, "%s: tags has %d tags; a resource can have at most %d", where, len(tags), MaxTags)
	}
	for i, t := range tags {
		for _, f := range []struct{ shape, field, v string }{{"TagKey", "key", t.Key}, {"TagValue", "value", t.Value}} {
			fails, err := modelString(f.shape, f.v)
			if err != nil {
				return err
			}
			if len(fails) > 0 {
				return errf(KindInvalidRequest, "%s: tags[%d].%s %q: %s", where, i, f.field, f.v, strings.Join(fails, "; "))
			}
		}
	}
	if err := checkTags(tags); err != nil {
		return errf(KindInvalidRequest, "%s: tags: %s", where, err.Error())
	}
	return nil
}

func checkTypeAndMode(hsmType, mode, where string) error {
	if err := checkOneOf(hsmType, "hsmType", where, HsmTypeHsm1, HsmTypeHsm2m); err != nil {
		return err
	}
	if err := checkOneOf(mode, "mode", where, ModeFIPS, ModeNonFIPS); err != nil {
		return err
	}
	if mode == ModeNonFIPS && hsmType == HsmTypeHsm1 {
		return errf(KindInvalidRequest, "%s: mode NON_FIPS is supported only with hsmType %s", where, HsmTypeHsm2m)
	}
	return nil
}

func checkCluster(c *Cluster, where string) error {
	if err := checkTenant(c.Tenant, where); err != nil {
		return err
	}
	if err := checkID("ClusterId", c.ID, "clusterId", where); err != nil {
		return err
	}
	if err := checkOneOf(c.State, "state", where, ClusterStates...); err != nil {
		return err
	}
	if c.StateBeforeDegraded != "" {
		if c.StateBeforeDegraded == ClusterDegraded || !slices.Contains(ClusterStates, c.StateBeforeDegraded) {
			return errf(KindInvalidRequest, "%s: stateBeforeDegraded %q must be a cluster state other than DEGRADED (the state healing returns to)", where, c.StateBeforeDegraded)
		}
	}
	if err := checkMigration(c, where); err != nil {
		return err
	}
	// The type the cluster will have: a hsmType left out is filled in.
	hsmType := cmp.Or(c.HsmType, defaultHsmType(c))
	if err := checkTypeAndMode(hsmType, c.Mode, where); err != nil {
		return err
	}
	if err := checkOneOf(c.NetworkType, "networkType", where, NetworkIPv4, NetworkDual); err != nil {
		return err
	}
	if c.NetworkType == NetworkDual && hsmType == HsmTypeHsm1 {
		return errf(KindInvalidRequest, "%s: networkType DUALSTACK is supported only with hsmType %s", where, HsmTypeHsm2m)
	}
	if err := checkRetentionField(c.RetentionDays, where); err != nil {
		return err
	}
	if err := checkSnapshotTags(c.Tags, where); err != nil {
		return err
	}
	if err := checkTimes(where, map[string]time.Time{"createdAt": c.Created, "transitionDueAt": c.Due, "nextBackupAt": c.NextBackup,
		"hsmTypeRollbackExpiration": c.HsmTypeRollbackExpiration, "deletedAt": c.Deleted}); err != nil {
		return err
	}
	azs := map[string]bool{}
	for j, sn := range c.Subnets {
		if sn.AZ == "" || sn.ID == "" {
			return errf(KindInvalidRequest, "%s: subnets[%d] needs a subnetId and an availabilityZone", where, j)
		}
		if azs[sn.AZ] {
			return errf(KindInvalidRequest, "%s: subnets[%d]: availabilityZone %s has another subnet; a cluster has at most one subnet per zone", where, j, sn.AZ)
		}
		azs[sn.AZ] = true
	}
	if len(c.Hsms) > MaxHsmsPerCluster {
		return errf(KindInvalidRequest, "%s: hsms has %d HSMs; a cluster has at most %d", where, len(c.Hsms), MaxHsmsPerCluster)
	}
	degraded := false
	for j, h := range c.Hsms {
		if err := checkHsm(h, azs, fmt.Sprintf("%s.hsms[%d]", where, j)); err != nil {
			return err
		}
		if h.State == HsmDegraded || h.State == HsmDeleteInProgress {
			degraded = true // a DEGRADED cluster heals once the degraded HSM is healed or gone
		}
	}
	if c.State == ClusterDegraded && !degraded {
		return errf(KindInvalidRequest, "%s: state is DEGRADED but none of its hsms is DEGRADED, so it could never be healed; give the degraded HSM state DEGRADED", where)
	}
	return nil
}

// checkMigration refuses an HSM type migration or rollback the service
// could never run, and the fields of one on a cluster that runs none. AWS
// migrates only hsm1.medium to hsm2m.medium (and rolls that back): a
// cluster keeps the type it migrates from until the last HSM is replaced,
// and remembers it as its previous type. Left out, the target and previous
// type (and the cluster's own) have one possible value, which Import fills
// in (fillMigration, defaultHsmType).
func checkMigration(c *Cluster, where string) error {
	for _, f := range []struct{ name, v string }{{"migrationTargetHsmType", c.TargetHsmType}, {"previousHsmType", c.PreviousHsmType}} {
		if err := checkOneOf(f.v, f.name, where, HsmTypeHsm1, HsmTypeHsm2m); err != nil {
			return err
		}
	}
	from, to := "", ""
	switch c.baseState() {
	case ClusterModifyInProgress:
		from, to = HsmTypeHsm1, HsmTypeHsm2m
	case ClusterRollbackInProgress:
		from, to = HsmTypeHsm2m, HsmTypeHsm1
	default:
		if c.TargetHsmType != "" {
			return errf(KindInvalidRequest, "%s: migrationTargetHsmType %s belongs to a cluster MODIFY_IN_PROGRESS or ROLLBACK_IN_PROGRESS, not %s; leave it out", where, c.TargetHsmType, c.State)
		}
		return nil
	}
	state := c.baseState()
	if err := checkOneOf(c.HsmType, "hsmType", where, HsmTypeHsm1, HsmTypeHsm2m); err != nil {
		return err
	}
	if c.HsmType != "" && c.HsmType != from {
		return errf(KindInvalidRequest, "%s: hsmType of a cluster %s is %s, not %s: it goes from %s to %s (the only HSM type migration AWS runs, or its rollback) and keeps the type it leaves until its last HSM is replaced; leave hsmType out to have it filled in", where, state, from, c.HsmType, from, to)
	}
	if c.TargetHsmType != "" && c.TargetHsmType != to {
		return errf(KindInvalidRequest, "%s: migrationTargetHsmType of a cluster %s is %s (from %s), not %s; leave it out to have it filled in", where, state, to, from, c.TargetHsmType)
	}
	if c.PreviousHsmType != "" && c.PreviousHsmType != HsmTypeHsm1 {
		return errf(KindInvalidRequest, "%s: previousHsmType of a cluster %s is %s, the type it migrated from, not %s; leave it out to have it filled in", where, state, HsmTypeHsm1, c.PreviousHsmType)
	}
	return nil
}

// defaultHsmType is the HsmType Import gives a cluster that leaves it out:
// hsm2m.medium, but hsm1.medium for a cluster MODIFY_IN_PROGRESS, the only
// type that migrates.
func defaultHsmType(c *Cluster) string {
	if c.baseState() == ClusterModifyInProgress {
		return HsmTypeHsm1
	}
	return HsmTypeHsm2m
}

func checkHsm(h *Hsm, azs map[string]bool, at string) error {
	if err := checkID("HsmId", h.ID, "hsmId", at); err != nil {
		return err
	}
	if err := checkOneOf(h.State, "state", at, HsmStates...); err != nil {
		return err
	}
	if err := checkOneOf(h.HsmType, "hsmType", at, HsmTypeHsm1, HsmTypeHsm2m); err != nil {
		return err
	}
	if !azs[h.AZ] {
		return errf(KindInvalidRequest, "%s: availabilityZone %q has no subnet in the cluster's subnets", at, h.AZ)
	}
	if h.EniIP != "" {
		if a, err := netip.ParseAddr(h.EniIP); err != nil || !a.Is4() {
			return errf(KindInvalidRequest, "%s: eniIp %q is not an IPv4 address", at, h.EniIP)
		}
	}
	if h.EniIPv6 != "" {
		if a, err := netip.ParseAddr(h.EniIPv6); err != nil || !a.Is6() || a.Is4In6() {
			return errf(KindInvalidRequest, "%s: eniIpV6 %q is not an IPv6 address", at, h.EniIPv6)
		}
	}
	return checkTimes(at, map[string]time.Time{"createdAt": h.Created, "transitionDueAt": h.Due})
}

func checkBackup(b *Backup, where string) error {
	if err := checkTenant(b.Tenant, where); err != nil {
		return err
	}
	for _, id := range []struct{ shape, field, v string }{
		{"BackupId", "backupId", b.ID}, {"ClusterId", "clusterId", b.ClusterID},
		{"ClusterId", "sourceClusterId", b.SourceCluster}, {"BackupId", "sourceBackupId", b.SourceBackup},
	} {
		if err := checkID(id.shape, id.v, id.field, where); err != nil {
			return err
		}
	}
	if err := checkOneOf(b.State, "state", where, BackupStates...); err != nil {
		return err
	}
	if err := checkTypeAndMode(b.HsmType, b.Mode, where); err != nil {
		return err
	}
	if err := checkRetentionField(b.RetentionDays, where); err != nil {
		return err
	}
	if err := checkSnapshotTags(b.Tags, where); err != nil {
		return err
	}
	if b.SourceRegion != "" && !KnownRegion(b.SourceRegion) {
		return errf(KindInvalidRequest, "%s: sourceRegion %q is not an AWS region", where, b.SourceRegion)
	}
	if (b.IsCopy || b.SourceBackup != "") && b.SourceRegion == "" {
		return errf(KindInvalidRequest, "%s: a copy of a backup (one with a sourceBackupId) needs sourceRegion, the region it was copied from", where)
	}
	return checkTimes(where, map[string]time.Time{"createdAt": b.Created, "deleteTimestamp": b.DeleteTimestamp,
		"copyTimestamp": b.CopyTimestamp, "transitionDueAt": b.Due, "expiresAt": b.ExpireAt})
}
