package cloudhsm

import (
	"net/netip"
	"slices"

	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
)

type tenantState struct {
	clusters     map[string]*Cluster
	clusterOrder []*Cluster // by Seq
	backups      map[string]*Backup
	backupOrder  []*Backup // by Seq
	// byCluster holds each source cluster's backups, by Seq: retention
	// and "is this the latest backup" look at one cluster's backups, and
	// scanning the tenant's for them made each backup's transition cost
	// O(backups in the account).
	byCluster map[string][]*Backup
	// withPolicy holds the backups that have a resource policy, by Seq:
	// listing what other accounts share with a caller visits these, not
	// every backup of the region.
	withPolicy []*Backup
	// addrs counts the addresses of HSM interfaces per subnet id, and hsms
	// the HSMs of the tenant (see trackHsm).
	addrs map[string]map[netip.Addr]int
	hsms  int
}

func (s *Service) tenant(t Tenant) *tenantState {
	ts := s.tenants[t]
	if ts == nil {
		ts = &tenantState{clusters: map[string]*Cluster{}, backups: map[string]*Backup{}, byCluster: map[string][]*Backup{}, addrs: map[string]map[netip.Addr]int{}}
		s.tenants[t] = ts
	}
	return ts
}

func (s *Service) lookupTenant(t Tenant) *tenantState { return s.tenants[t] }

// internSubnets returns the shared copy of a set of subnets (callers hold
// the write lock, or are loading).
func (s *Service) internSubnets(sns []network.Subnet) []network.Subnet {
	if len(sns) == 0 {
		return sns
	}
	// Keyed by the first subnet's id (no allocation); the candidates are
	// compared whole.
	for _, shared := range s.subnetSets[sns[0].ID] {
		if slices.Equal(shared, sns) {
			return shared
		}
	}
	if s.subnetSets == nil {
		s.subnetSets = map[string][][]network.Subnet{}
	}
	s.subnetSets[sns[0].ID] = append(s.subnetSets[sns[0].ID], sns)
	return sns
}

func (s *Service) insertCluster(c *Cluster) {
	ts := s.tenant(c.Tenant)
	ts.clusters[c.ID] = c
	// Keep clusterOrder sorted by Seq: loads arrive in key order, not Seq order.
	ts.clusterOrder = insertBySeq(ts.clusterOrder, c, clusterSeq)
	for _, h := range c.Hsms {
		s.ids.holdHsm(h.ID)
		ts.trackHsm(h, 1)
	}
	s.seq.observe(c.Seq)
}

// addHsm adds h to c: every HSM entering a cluster goes through it.
func (s *Service) addHsm(c *Cluster, h *Hsm) {
	c.Hsms = append(c.Hsms, h)
	s.ids.holdHsm(h.ID)
	s.tenant(c.Tenant).trackHsm(h, 1)
}

// removeHsm takes h out of c: every HSM leaving a cluster that stays goes
// through it.
func (s *Service) removeHsm(c *Cluster, h *Hsm, p *pending) {
	c.Hsms = slices.DeleteFunc(c.Hsms, func(x *Hsm) bool { return x == h })
	s.ids.releaseHsm(h.ID)
	s.tenant(c.Tenant).trackHsm(h, -1)
	p.hsmGone(c, h)
}

func (s *Service) insertBackup(b *Backup) {
	ts := s.tenant(b.Tenant)
	ts.backups[b.ID] = b
	ts.backupOrder = insertBySeq(ts.backupOrder, b, backupSeq)
	ts.byCluster[b.ClusterID] = insertBySeq(ts.byCluster[b.ClusterID], b, backupSeq)
	s.indexPolicy(ts, b)
	s.seq.observe(b.Seq)
}

// indexPolicy parses b's policy and lists b among its tenant's backups
// with a policy if it has one.
func (s *Service) indexPolicy(ts *tenantState, b *Backup) {
	b.sharedAccounts = nil
	if b.Policy != "" {
		b.sharedAccounts = policyAccounts(b)
		ts.withPolicy = insertBySeq(ts.withPolicy, b, backupSeq)
	}
}

// replaceCluster puts c (a newer copy of the same record) where old is,
// without moving the others: other processes' writes replace clusters
// all the time, and a tenant may hold 100,000.
func (s *Service) replaceCluster(old, c *Cluster) {
	ts := s.tenant(c.Tenant)
	delete(ts.clusters, old.ID)
	ts.clusters[c.ID] = c
	replaceBySeq(ts.clusterOrder, old, c, clusterSeq)
	for _, h := range old.Hsms {
		ts.trackHsm(h, -1)
		s.ids.releaseHsm(h.ID)
	}
	for _, h := range c.Hsms {
		s.ids.holdHsm(h.ID)
		ts.trackHsm(h, 1)
	}
}

// replaceBackup puts b (a newer copy of the same record) where old is.
func (s *Service) replaceBackup(old, b *Backup) {
	ts := s.tenant(b.Tenant)
	if old.ClusterID != b.ClusterID {
		s.removeBackup(old)
		s.insertBackup(b)
		return
	}
	delete(ts.backups, old.ID)
	ts.backups[b.ID] = b
	replaceBySeq(ts.backupOrder, old, b, backupSeq)
	replaceBySeq(ts.byCluster[b.ClusterID], old, b, backupSeq)
	if old.Policy != "" {
		ts.withPolicy = removeBySeq(ts.withPolicy, old.Seq, backupSeq)
	}
	s.indexPolicy(ts, b)
}

// replaceBySeq puts x where old is in xs (kept in Seq order; both have
// one Seq).
func replaceBySeq[T comparable](xs []T, old, x T, key func(T) uint64) {
	if i := searchSeq(xs, key(old), key); i < len(xs) && xs[i] == old {
		xs[i] = x
	}
}

// insertBySeq inserts x into xs, kept in Seq order (key gives the Seq).
func insertBySeq[T any](xs []T, x T, key func(T) uint64) []T {
	i := len(xs)
	xs = append(xs, x)
	for i > 0 && key(xs[i-1]) > key(x) {
		xs[i] = xs[i-1]
		i--
	}
	xs[i] = x
	return xs
}

func clusterSeq(c *Cluster) uint64 { return c.Seq }

func backupSeq(b *Backup) uint64 { return b.Seq }

func (s *Service) removeCluster(c *Cluster) {
	ts := s.tenant(c.Tenant)
	delete(ts.clusters, c.ID)
	ts.clusterOrder = removeBySeq(ts.clusterOrder, c.Seq, clusterSeq)
	for _, h := range c.Hsms {
		ts.trackHsm(h, -1)
		s.ids.releaseHsm(h.ID)
	}
}

func (s *Service) removeBackup(b *Backup) {
	ts := s.tenant(b.Tenant)
	delete(ts.backups, b.ID)
	ts.backupOrder = removeBySeq(ts.backupOrder, b.Seq, backupSeq)
	if rest := removeBySeq(ts.byCluster[b.ClusterID], b.Seq, backupSeq); len(rest) > 0 {
		ts.byCluster[b.ClusterID] = rest
	} else {
		delete(ts.byCluster, b.ClusterID)
	}
	if b.Policy != "" {
		ts.withPolicy = removeBySeq(ts.withPolicy, b.Seq, backupSeq)
	}
}

func removeBySeq[T any](xs []T, seq uint64, key func(T) uint64) []T {
	i := searchSeq(xs, seq, key)
	if i < len(xs) && key(xs[i]) == seq {
		return slices.Delete(xs, i, i+1) // clears the freed slot: no stale pointer kept
	}
	return xs
}

// searchSeq returns the index of the first element with key >= seq.
func searchSeq[T any](xs []T, seq uint64, key func(T) uint64) int {
	lo, hi := 0, len(xs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if key(xs[m]) < seq {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}
