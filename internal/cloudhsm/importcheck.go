package cloudhsm

import (
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
// Fields left empty are not checked: Import fills them.
func checkSnapshot(snap *Snapshot) error {
	clusters, backups := snapshotIDs{}, snapshotIDs{}
	hsms := map[string]string{}
	for i, c := range snap.Clusters {
		where := itemName("clusters", i, c.ID)
		if err := checkCluster(c, where); err != nil {
			return err
		}
		if err := clusters.add("clusters", i, c.Tenant, c.ID, where); err != nil {
			return err
		}
		for j, h := range c.Hsms {
			if h.ID == "" {
				continue
			}
			at := fmt.Sprintf("clusters[%d].Hsms[%d]", i, j)
			if other, dup := hsms[h.ID]; dup {
				return errf(KindInvalidRequest, "%s: ID %s is also the id of %s; HSM ids appear once per snapshot", at, h.ID, other)
			}
			hsms[h.ID] = at
		}
	}
	for i, b := range snap.Backups {
		where := itemName("backups", i, b.ID)
		if err := checkBackup(b, where); err != nil {
			return err
		}
		if err := backups.add("backups", i, b.Tenant, b.ID, where); err != nil {
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

// add records item i of list, refusing an id an earlier item has (an empty
// id is made by Import, so never a duplicate).
func (seen snapshotIDs) add(list string, i int, t Tenant, id, where string) error {
	if id == "" {
		return nil
	}
	k := tenantItem{t, id}
	if j, dup := seen[k]; dup {
		return errf(KindInvalidRequest, "%s: ID %s is also the id of %s[%d] in %s/%s; ids appear once per snapshot", where, id, list, j, t.Account, t.Region)
	}
	seen[k] = i
	return nil
}

func checkTenant(t Tenant, where string) error {
	if t.Account == "" || t.Region == "" {
		return errf(KindInvalidRequest, "%s: Tenant.Account and Tenant.Region are required", where)
	}
	if !accountRe.MatchString(t.Account) {
		return errf(KindInvalidRequest, "%s: Tenant.Account %q is not a 12-digit AWS account id", where, t.Account)
	}
	if !KnownRegion(t.Region) {
		return errf(KindInvalidRequest, "%s: Tenant.Region %q is not an AWS region", where, t.Region)
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
		return errf(KindInvalidRequest, "%s: RetentionDays %d is outside %d to %d (leave it out for the default, %d)", where, days, MinRetentionDays, MaxRetentionDays, DefaultRetentionDays)
	}
	return nil
}

// checkSnapshotTags applies the rules of TagResource and the model's tag
// constraints.
func checkSnapshotTags(tags []Tag, where string) error {
	if len(tags) > MaxTags {
		return errf(KindInvalidRequest, "%s: Tags has %d tags; a resource can have at most %d", where, len(tags), MaxTags)
	}
	for i, t := range tags {
		for _, f := range []struct{ shape, field, v string }{{"TagKey", "Key", t.Key}, {"TagValue", "Value", t.Value}} {
			fails, err := modelString(f.shape, f.v)
			if err != nil {
				return err
			}
			if len(fails) > 0 {
				return errf(KindInvalidRequest, "%s: Tags[%d].%s %q: %s", where, i, f.field, f.v, strings.Join(fails, "; "))
			}
		}
	}
	if err := checkTags(tags); err != nil {
		return errf(KindInvalidRequest, "%s: Tags: %s", where, err.Error())
	}
	return nil
}

func checkTypeAndMode(hsmType, mode, where string) error {
	if err := checkOneOf(hsmType, "HsmType", where, HsmTypeHsm1, HsmTypeHsm2m); err != nil {
		return err
	}
	if err := checkOneOf(mode, "Mode", where, ModeFIPS, ModeNonFIPS); err != nil {
		return err
	}
	if mode == ModeNonFIPS && hsmType == HsmTypeHsm1 {
		return errf(KindInvalidRequest, "%s: Mode NON_FIPS is supported only with HsmType %s", where, HsmTypeHsm2m)
	}
	return nil
}

func checkCluster(c *Cluster, where string) error {
	if err := checkTenant(c.Tenant, where); err != nil {
		return err
	}
	if err := checkID("ClusterId", c.ID, "ID", where); err != nil {
		return err
	}
	if err := checkTypeAndMode(c.HsmType, c.Mode, where); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{{"TargetHsmType", c.TargetHsmType}, {"PreviousHsmType", c.PreviousHsmType}} {
		if err := checkOneOf(f.v, f.name, where, HsmTypeHsm1, HsmTypeHsm2m); err != nil {
			return err
		}
	}
	if err := checkOneOf(c.NetworkType, "NetworkType", where, NetworkIPv4, NetworkDual); err != nil {
		return err
	}
	if c.NetworkType == NetworkDual && c.HsmType == HsmTypeHsm1 {
		return errf(KindInvalidRequest, "%s: NetworkType DUALSTACK is supported only with HsmType %s", where, HsmTypeHsm2m)
	}
	if err := checkOneOf(c.State, "State", where, ClusterStates...); err != nil {
		return err
	}
	if c.StateBeforeDegraded != "" {
		if c.StateBeforeDegraded == ClusterDegraded || !slices.Contains(ClusterStates, c.StateBeforeDegraded) {
			return errf(KindInvalidRequest, "%s: StateBeforeDegraded %q must be a cluster state other than DEGRADED (the state healing returns to)", where, c.StateBeforeDegraded)
		}
	}
	if err := checkRetentionField(c.RetentionDays, where); err != nil {
		return err
	}
	if err := checkSnapshotTags(c.Tags, where); err != nil {
		return err
	}
	if err := checkTimes(where, map[string]time.Time{"Created": c.Created, "Due": c.Due, "NextBackup": c.NextBackup,
		"HsmTypeRollbackExpiration": c.HsmTypeRollbackExpiration, "Deleted": c.Deleted}); err != nil {
		return err
	}
	azs := map[string]bool{}
	for j, sn := range c.Subnets {
		if sn.AZ == "" || sn.ID == "" {
			return errf(KindInvalidRequest, "%s: Subnets[%d] needs an ID and an AZ", where, j)
		}
		if azs[sn.AZ] {
			return errf(KindInvalidRequest, "%s: Subnets[%d]: Availability Zone %s has another subnet; a cluster has at most one subnet per zone", where, j, sn.AZ)
		}
		azs[sn.AZ] = true
	}
	if len(c.Hsms) > MaxHsmsPerCluster {
		return errf(KindInvalidRequest, "%s: Hsms has %d HSMs; a cluster has at most %d", where, len(c.Hsms), MaxHsmsPerCluster)
	}
	degraded := false
	for j, h := range c.Hsms {
		at := fmt.Sprintf("%s.Hsms[%d]", where, j)
		if err := checkID("HsmId", h.ID, "ID", at); err != nil {
			return err
		}
		if err := checkOneOf(h.State, "State", at, HsmStates...); err != nil {
			return err
		}
		if err := checkOneOf(h.HsmType, "HsmType", at, HsmTypeHsm1, HsmTypeHsm2m); err != nil {
			return err
		}
		if !azs[h.AZ] {
			return errf(KindInvalidRequest, "%s: AZ %q has no subnet in the cluster's Subnets", at, h.AZ)
		}
		if h.EniIP != "" {
			if a, err := netip.ParseAddr(h.EniIP); err != nil || !a.Is4() {
				return errf(KindInvalidRequest, "%s: EniIP %q is not an IPv4 address", at, h.EniIP)
			}
		}
		if h.EniIPv6 != "" {
			if a, err := netip.ParseAddr(h.EniIPv6); err != nil || !a.Is6() || a.Is4In6() {
				return errf(KindInvalidRequest, "%s: EniIPv6 %q is not an IPv6 address", at, h.EniIPv6)
			}
		}
		if err := checkTimes(at, map[string]time.Time{"Created": h.Created, "Due": h.Due}); err != nil {
			return err
		}
		if h.State == HsmDegraded || h.State == HsmDeleteInProgress {
			degraded = true // a DEGRADED cluster heals once the degraded HSM is healed or gone
		}
	}
	if c.State == ClusterDegraded && !degraded {
		return errf(KindInvalidRequest, "%s: State is DEGRADED but none of its Hsms is DEGRADED, so it could never be healed; give the degraded HSM State DEGRADED", where)
	}
	return nil
}

func checkBackup(b *Backup, where string) error {
	if err := checkTenant(b.Tenant, where); err != nil {
		return err
	}
	if err := checkID("BackupId", b.ID, "ID", where); err != nil {
		return err
	}
	if err := checkID("ClusterId", b.ClusterID, "ClusterID", where); err != nil {
		return err
	}
	if err := checkID("ClusterId", b.SourceCluster, "SourceCluster", where); err != nil {
		return err
	}
	if err := checkID("BackupId", b.SourceBackup, "SourceBackup", where); err != nil {
		return err
	}
	if err := checkOneOf(b.State, "State", where, BackupStates...); err != nil {
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
		return errf(KindInvalidRequest, "%s: SourceRegion %q is not an AWS region", where, b.SourceRegion)
	}
	if (b.IsCopy || b.SourceBackup != "") && b.SourceRegion == "" {
		return errf(KindInvalidRequest, "%s: a copy (IsCopy or SourceBackup) needs SourceRegion, the region it was copied from", where)
	}
	return checkTimes(where, map[string]time.Time{"Created": b.Created, "DeleteTimestamp": b.DeleteTimestamp,
		"CopyTimestamp": b.CopyTimestamp, "Due": b.Due, "ExpireAt": b.ExpireAt})
}
