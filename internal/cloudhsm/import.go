package cloudhsm

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
)

// Import adds the snapshot's clusters and backups, replacing any with the
// same ids. Missing fields get the defaults a new resource would have:
// ids, creation time (now), retention, mode, network type, subnet mapping,
// HSM identities and, for an UNINITIALIZED cluster with an ACTIVE HSM, its
// CSR. Pending transitions in the snapshot resume from their due times; an
// in-progress state without one resumes as if it had begun at the import.
// A snapshot the service could never hold is refused, naming the item and
// the field (by the names of docs/snapshot-format.md, the format users
// write), before anything changes.
func (s *Service) Import(snap *Snapshot) error {
	_, err := s.importSnapshot(snap, false)
	return err
}

// Seed imports snap into an estate that holds no cluster and no backup,
// and reports whether it did: an estate with resources is left alone.
// Emptiness is decided under the estate's lock, so of several processes
// starting together on one shared estate, one seeds it.
func (s *Service) Seed(snap *Snapshot) (bool, error) {
	return s.importSnapshot(snap, true)
}

func (s *Service) importSnapshot(snap *Snapshot, onlyIntoEmpty bool) (imported bool, err error) {
	// Refuse what the service could never hold before generating keys.
	if err := checkSnapshot(snap); err != nil {
		return false, err
	}
	// Identities are generated before taking the lock: key generation is slow.
	for _, c := range snap.Clusters {
		for _, h := range c.Hsms {
			if h.ID == "" {
				h.ID = s.reserveID("hsm-")
				defer s.unreserveID(h.ID)
			}
			if h.Identity == nil {
				id, _, err := s.newIdentity(h.ID, c.Mode, c.HsmType, false)
				if err != nil {
					return false, fmt.Errorf("identity of %s: %w", h.ID, err)
				}
				h.Identity = id
			}
		}
	}
	err = s.commit(CauseAdmin+"import", func(now time.Time, p *pending) error {
		if onlyIntoEmpty && !s.emptyLocked() {
			return nil
		}
		imported = true
		p.imported = true
		if err := s.checkHeldHsmIDs(snap.Clusters); err != nil {
			return err
		}
		addrs := s.newImportAddrs(snap.Clusters)
		for i, c := range snap.Clusters {
			if err := s.fillCluster(c, now, addrs); err != nil {
				return wrapItem(err, "clusters[%d] (%s)", i, c.ID)
			}
		}
		for i, b := range snap.Backups {
			if err := s.fillBackup(b, now); err != nil {
				return wrapItem(err, "backups[%d] (%s)", i, b.ID)
			}
		}
		// The import goes through from here on (unless the network
		// provider cannot save the subnets it adopts).
		if err := s.adoptSubnets(snap.Clusters); err != nil {
			return err
		}
		for _, c := range snap.Clusters {
			replaced := false
			if ts := s.lookupTenant(c.Tenant); ts != nil {
				if old := ts.clusters[c.ID]; old != nil {
					s.removeCluster(old)
					p.dropCluster(old)
					replaced = true
					if old.State != ClusterDeleted && old.SecurityGroup != c.SecurityGroup {
						s.deleteSecurityGroup(old, p)
					} else {
						// The group stays; the interfaces of the HSMs that
						// the imported cluster does not keep go.
						for _, h := range old.Hsms {
							if !slices.ContainsFunc(c.Hsms, func(n *Hsm) bool { return n.EniID == h.EniID }) {
								s.deleteHsmInterface(old, h, true, p)
							}
						}
					}
				}
			}
			c.Seq = s.seq.next()
			s.insertCluster(c)
			s.scheduleCluster(c)
			p.cluster(c)
			if replaced {
				s.rescheduleExpiry(c, now, p)
			}
		}
		for _, b := range snap.Backups {
			if ts := s.lookupTenant(b.Tenant); ts != nil {
				if old := ts.backups[b.ID]; old != nil {
					s.removeBackup(old)
					p.dropBackup(old)
				}
			}
			b.Seq = s.seq.next()
			s.insertBackup(b)
		}
		// Expiry is decided once every backup is in: whether a backup is
		// its cluster's latest depends on the others.
		for _, b := range snap.Backups {
			s.fillExpiry(b, now)
			s.scheduleBackup(b)
			p.backup(b)
		}
		return nil
	})
	return imported && err == nil, err
}

// emptyLocked reports whether the estate holds no cluster and no backup.
func (s *Service) emptyLocked() bool {
	for _, ts := range s.tenants {
		if len(ts.clusters) > 0 || len(ts.backups) > 0 {
			return false
		}
	}
	return true
}

// fillExpiry gives a READY backup of the snapshot without an expiry the
// one retention gives it: the retention of the snapshot's clusters, now
// in, with a day's grace, so that a seeded estate is what the seed says
// when it is first read. A backup retention would already have passed
// over because it is its cluster's latest (retention never deletes that
// one) stays without an expiry, as the service keeps it: it is looked at
// again when a newer backup is READY. An export of a backup so kept says
// no expiry too, so an export imported is exported the same.
func (s *Service) fillExpiry(b *Backup, now time.Time) {
	if b.State != BackupReady || !b.ExpireAt.IsZero() {
		return
	}
	at := s.computeExpiry(b, now)
	if at.IsZero() {
		return // a copy, or kept forever
	}
	if !at.After(now) && s.isLatest(s.lookupTenant(b.Tenant), b) {
		return
	}
	if grace := now.Add(s.cfg.BackupInterval); at.Before(grace) {
		at = grace
	}
	b.ExpireAt = at
}

// adoptSubnets makes the network provider remember the subnets of imported
// clusters it does not know yet (with their VPC, zone and CIDR blocks), so
// that a later CreateCluster naming one finds it where the imported cluster
// has it rather than inventing another placement (see network.Provider's
// Adopt).
func (s *Service) adoptSubnets(clusters []*Cluster) error {
	for _, c := range clusters {
		if err := s.net.Adopt(network.Tenant(c.Tenant), c.Subnets); err != nil {
			return fmt.Errorf("subnets of cluster %s: %w", c.ID, err)
		}
	}
	return nil
}

// importAddrs is what Import knows, while it fills a snapshot's clusters,
// about the addresses of HSM interfaces beyond the tenants' index: the
// clusters join the index only once all are filled, and the clusters they
// replace leave it only then.
type importAddrs struct {
	// given holds the addresses given to the snapshot's HSMs so far.
	given map[tenantAddr]bool
	// freed counts the addresses held by the clusters the snapshot
	// replaces: free for its HSMs.
	freed map[tenantAddr]int
}

// tenantAddr is an address of a subnet as one tenant uses it.
type tenantAddr struct {
	t      Tenant
	subnet string
	a      netip.Addr
}

// newImportAddrs starts the accounts of an import of clusters.
func (s *Service) newImportAddrs(clusters []*Cluster) *importAddrs {
	ia := &importAddrs{given: map[tenantAddr]bool{}, freed: map[tenantAddr]int{}}
	for _, c := range clusters {
		if ts := s.lookupTenant(c.Tenant); ts != nil && ts.clusters[c.ID] != nil {
			for _, h := range ts.clusters[c.ID].Hsms {
				for _, a := range hsmAddrs(h) {
					ia.freed[tenantAddr{c.Tenant, h.SubnetID, a}]++
				}
			}
		}
	}
	return ia
}

// inUse reports whether address a of subnet subnetID is taken for an HSM
// of t being imported: by a cluster of t that stays, or by an HSM of the
// snapshot already filled.
func (ia *importAddrs) inUse(s *Service, t Tenant, subnetID string) func(netip.Addr) bool {
	var held map[netip.Addr]int
	if ts := s.lookupTenant(t); ts != nil {
		held = ts.addrs[subnetID]
	}
	return func(a netip.Addr) bool {
		k := tenantAddr{t, subnetID, a}
		return held[a] > ia.freed[k] || ia.given[k]
	}
}

// give records h's addresses as taken.
func (ia *importAddrs) give(t Tenant, h *Hsm) {
	for _, a := range hsmAddrs(h) {
		ia.given[tenantAddr{t, h.SubnetID, a}] = true
	}
}

func (s *Service) fillCluster(c *Cluster, now time.Time, addrs *importAddrs) error {
	if c.Tenant.Account == "" || c.Tenant.Region == "" {
		return errf(KindInvalidRequest, "account and region are required")
	}
	if c.ID == "" {
		c.ID = s.freshID("cluster-")
	}
	c.HsmType = cmp.Or(c.HsmType, defaultHsmType(c))
	c.Mode = cmp.Or(c.Mode, ModeFIPS)
	c.NetworkType = cmp.Or(c.NetworkType, NetworkIPv4)
	c.State = cmp.Or(c.State, ClusterActive)
	if !slices.Contains(ClusterStates, c.State) {
		return errf(KindInvalidRequest, "unknown cluster state %q", c.State)
	}
	if c.Created.IsZero() {
		c.Created = now
	}
	c.RetentionDays = cmp.Or(c.RetentionDays, DefaultRetentionDays)
	if c.Hsms == nil {
		c.Hsms = []*Hsm{}
	}
	c.Tags = sortTags(c.Tags)
	s.fillClusterDue(c, now)
	fillMigration(c, now)
	if c.State == ClusterInitializeInProgress && c.StateMessage == "" {
		c.StateMessage = msgInitializing
	}
	if c.State == ClusterDeleteInProgress && c.StateMessage == "" {
		c.StateMessage = msgDeleting
	}
	if c.NextBackup.IsZero() && c.baseState() == ClusterActive && len(c.Hsms) > 0 {
		c.NextBackup = now.Add(s.cfg.BackupInterval)
	}
	if err := s.fillHsms(c, now, addrs); err != nil {
		return err
	}
	if c.Csr != "" && c.Partition == 0 {
		c.Partition = 1 // the partition every cluster CSR names
	}
	if c.State == ClusterUninitialized && c.Csr == "" {
		for _, h := range c.Hsms {
			if h.State == HsmActive {
				c.Partition = 1
				csr, err := clusterCSR(h.Identity, c.Partition, c.Mode, c.HsmType)
				if err != nil {
					return errf(KindInvalidRequest, "HSM %s: its identity cannot sign the cluster CSR (%v); leave identity out to have one made", h.ID, err)
				}
				c.Csr, c.CsrHsmID = csr, h.ID
				break
			}
		}
	}
	return nil
}

// fillClusterDue gives an in-progress state (also one under DEGRADED)
// without a due time the one it would have had if it had begun at the
// import: one delay from now.
func (s *Service) fillClusterDue(c *Cluster, now time.Time) {
	if !c.Due.IsZero() {
		return
	}
	switch c.baseState() {
	case ClusterCreateInProgress:
		c.Due = now.Add(s.cfg.Delays.ClusterCreate)
	case ClusterInitializeInProgress:
		c.Due = now.Add(s.cfg.Delays.ClusterInitialize)
	case ClusterInitialized:
		if !s.cfg.ManualActivation {
			c.Due = now.Add(s.cfg.Delays.ClusterActivate)
		}
	case ClusterDeleteInProgress:
		c.Due = now.Add(s.cfg.Delays.ClusterDelete)
	case ClusterModifyInProgress, ClusterRollbackInProgress:
		c.Due = now.Add(s.cfg.Delays.ModifyPerHsm)
	case ClusterDeleted:
		c.Due = now.Add(s.cfg.DeletedRetention)
	}
}

// rollbackWindow is how long after a migration starts AWS lets it be
// rolled back (see startModify).
const rollbackWindow = 24 * time.Hour

// fillMigration completes an HSM type migration or rollback whose target,
// previous type or rollback window the snapshot leaves out. Each has one
// possible value (checkMigration refused the rest): AWS migrates only
// hsm1.medium to hsm2m.medium, and rolls back only that. A migration
// without its rollback window gets the window of one begun at the import
// (24 hours), as a due time left out does.
func fillMigration(c *Cluster, now time.Time) {
	switch c.baseState() {
	case ClusterModifyInProgress:
		c.TargetHsmType = cmp.Or(c.TargetHsmType, HsmTypeHsm2m)
		c.PreviousHsmType = cmp.Or(c.PreviousHsmType, HsmTypeHsm1)
		if c.HsmTypeRollbackExpiration.IsZero() {
			c.HsmTypeRollbackExpiration = now.Add(rollbackWindow)
		}
	case ClusterRollbackInProgress:
		c.TargetHsmType = cmp.Or(c.TargetHsmType, HsmTypeHsm1)
		c.PreviousHsmType = cmp.Or(c.PreviousHsmType, HsmTypeHsm1)
	}
}

// fillHsms gives the cluster's HSMs their missing due times, interfaces,
// addresses, types, times and messages.
func (s *Service) fillHsms(c *Cluster, now time.Time, addrs *importAddrs) error {
	for j, h := range c.Hsms {
		if h.Due.IsZero() {
			switch h.State {
			case HsmCreateInProgress:
				h.Due = now.Add(s.cfg.Delays.HsmCreate)
			case HsmDeleteInProgress:
				h.Due = now.Add(s.cfg.Delays.HsmDelete)
			}
		}
		if h.EniID == "" {
			h.EniID = network.NewENIID()
		}
		if err := s.fillHsmAddrs(c, j, addrs); err != nil {
			return err
		}
	}
	for _, h := range c.Hsms {
		h.State = cmp.Or(h.State, HsmActive)
		h.HsmType = cmp.Or(h.HsmType, c.HsmType)
		if h.Created.IsZero() {
			h.Created = now
		}
		if h.State == HsmActive && h.StateMessage == "" {
			h.StateMessage = msgHsmCreated
		}
		if h.SubnetID == "" {
			h.SubnetID = c.subnet(h.AZ).ID
		}
		addrs.give(c.Tenant, h)
	}
	return nil
}

// fillHsmAddrs chooses the addresses HSM j of c leaves out, and checks
// the IPv4 address it gives as CreateHsm checks a requested one.
func (s *Service) fillHsmAddrs(c *Cluster, j int, addrs *importAddrs) error {
	h := c.Hsms[j]
	sn := c.subnet(h.AZ)
	// The tenant's HSMs (but those of a cluster this one replaces),
	// those of the snapshot's earlier clusters, and this cluster's
	// other HSMs.
	taken := addrs.inUse(s, c.Tenant, sn.ID)
	inUse := func(a netip.Addr) bool {
		return taken(a) || slices.ContainsFunc(c.Hsms, func(o *Hsm) bool { return o != h && (o.EniIP == a.String() || o.EniIPv6 == a.String()) })
	}
	if h.EniIP == "" {
		if !sn.CIDR.IsValid() {
			return errf(KindInvalidRequest, "hsms[%d] (%s): subnet %s of availabilityZone %q has no cidr, so eniIp cannot be chosen: give the subnet's cidr or the HSM's eniIp", j, h.ID, sn.ID, h.AZ)
		}
		ip, err := network.AllocateIPv4(sn, inUse, "")
		if err != nil {
			return networkError(err)
		}
		h.EniIP = ip.String()
	} else if sn.CIDR.IsValid() {
		earlier := func(a netip.Addr) bool {
			return taken(a) || slices.ContainsFunc(c.Hsms[:j], func(o *Hsm) bool { return o.EniIP == a.String() })
		}
		if _, err := network.AllocateIPv4(sn, earlier, h.EniIP); err != nil {
			return errf(KindInvalidRequest, "hsms[%d] (%s): eniIp: %s", j, h.ID, networkError(err).Error())
		}
	}
	if c.NetworkType == NetworkDual && h.EniIPv6 == "" && sn.IPv6CIDR.IsValid() {
		// As CreateHsm gives a dual-stack HSM its IPv6 address.
		ip6, err := network.AllocateIPv6(sn, inUse)
		if err != nil {
			return networkError(err)
		}
		h.EniIPv6 = ip6.String()
	}
	return nil
}

// wrapItem prefixes err with the snapshot item it is about, keeping a
// domain error's kind (a refusal stays a 400).
func wrapItem(err error, format string, args ...any) error {
	var de *Error
	if errors.As(err, &de) {
		return &Error{Kind: de.Kind, Message: fmt.Sprintf(format, args...) + ": " + de.Message}
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

func (s *Service) fillBackup(b *Backup, now time.Time) error {
	if b.Tenant.Account == "" || b.Tenant.Region == "" {
		return errf(KindInvalidRequest, "account and region are required")
	}
	if b.ID == "" {
		b.ID = s.freshID("backup-")
	}
	if b.State == "" {
		b.State = BackupReady
	}
	if !slices.Contains(BackupStates, b.State) {
		return errf(KindInvalidRequest, "unknown backup state %q", b.State)
	}
	if b.Created.IsZero() {
		b.Created = now
	}
	if b.HsmType == "" {
		b.HsmType = HsmTypeHsm2m
	}
	if b.Mode == "" {
		b.Mode = ModeFIPS
	}
	b.Tags = sortTags(b.Tags)
	if b.State == BackupPendingDeletion && b.DeleteTimestamp.IsZero() {
		b.DeleteTimestamp = now.Add(PendingDeletionWindow)
	}
	if b.State == BackupPendingDeletion && b.Due.IsZero() {
		b.Due = b.DeleteTimestamp
	}
	if b.State == BackupCreateInProgress && b.Due.IsZero() {
		b.Due = now.Add(s.cfg.Delays.BackupCreate)
	}
	if b.State == BackupDeleted && b.Due.IsZero() {
		b.Due = now.Add(s.cfg.DeletedRetention)
	}
	if b.SourceBackup != "" {
		b.IsCopy = true
	}
	// ExpireAt, when missing, is computed once the snapshot's clusters
	// are in (see Import).
	return nil
}

// checkHeldHsmIDs refuses an imported HSM whose id a cluster of the same
// account and region holds, unless the import replaces that cluster: the
// account would list two HSMs with one id (tools such as Terraform find an
// HSM by its id across the account's clusters). The write lock is held.
func (s *Service) checkHeldHsmIDs(clusters []*Cluster) error {
	replaced := map[Tenant]map[string]bool{}
	for _, c := range clusters {
		if replaced[c.Tenant] == nil {
			replaced[c.Tenant] = map[string]bool{}
		}
		replaced[c.Tenant][c.ID] = true
	}
	for i, c := range clusters {
		ts := s.lookupTenant(c.Tenant)
		if ts == nil {
			continue
		}
		for j, h := range c.Hsms {
			if h.ID == "" || s.ids.hsms[h.ID] == 0 {
				continue
			}
			for _, o := range ts.clusterOrder {
				if replaced[c.Tenant][o.ID] || hsmIndex(o.Hsms, h.ID) < 0 {
					continue
				}
				return errf(KindInvalidRequest, "clusters[%d] (%s).hsms[%d]: hsmId %s is held by cluster %s of account %s in %s; HSM ids are unique (leave it out to have one made)",
					i, c.ID, j, h.ID, o.ID, c.Tenant.Account, c.Tenant.Region)
			}
		}
	}
	return nil
}
