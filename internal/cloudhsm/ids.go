package cloudhsm

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// The numbers and names the service hands out live here, each made one way:
//
//   - ids (cluster-, hsm-, backup- and 11 base32 characters) come from
//     Service.freshID, unique across the whole server (every account and
//     region), as AWS's are unique across AWS;
//   - creation order (Seq: store keys and paging positions) and cluster
//     versions (the key of cached views) come from a counter.
//
// Both are guarded by the service's write lock. For a store that other
// processes write too, the lock is the estate's (see Service.commit): the
// records those processes made are applied before anything is handed out,
// so these in-memory counters stay exact there as well.

// newID returns prefix + 11 lowercase base32 characters, as AWS's ids are.
func newID(prefix string) string {
	var b [7]byte
	_, _ = rand.Read(b[:])
	return prefix + strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))[:11]
}

// idRegistry is what ids in use the indexes of clusters and backups do not
// tell: the HSMs' (counted: an imported estate may hold one HSM id in two
// tenants) and those reserved for resources being made outside the lock
// (CreateCluster makes the security group, CreateHsm the keys, before they
// commit). Cluster and backup ids are found in the tenants' maps (see
// Service.idInUse), which 100,000 clusters pay nothing more for.
type idRegistry struct {
	hsms     map[string]int32
	reserved map[string]struct{}
}

func newIDRegistry() idRegistry {
	return idRegistry{hsms: map[string]int32{}, reserved: map[string]struct{}{}}
}

func (r *idRegistry) holdHsm(id string) { r.hsms[id]++ }

func (r *idRegistry) releaseHsm(id string) {
	if r.hsms[id]--; r.hsms[id] <= 0 {
		delete(r.hsms, id)
	}
}

// idInUse reports whether a resource holds id, or one being made reserved
// it, anywhere on the server. s.mu is held.
func (s *Service) idInUse(id string) bool {
	if _, ok := s.ids.reserved[id]; ok {
		return true
	}
	switch {
	case strings.HasPrefix(id, "hsm-"):
		return s.ids.hsms[id] > 0
	case strings.HasPrefix(id, "cluster-"):
		for _, ts := range s.tenants {
			if ts.clusters[id] != nil {
				return true
			}
		}
	case strings.HasPrefix(id, "backup-"):
		for _, ts := range s.tenants {
			if ts.backups[id] != nil {
				return true
			}
		}
	}
	return false
}

// freshID returns a new id with prefix that nothing holds or reserves.
// s.mu is held.
func (s *Service) freshID(prefix string) string {
	for {
		if id := newID(prefix); !s.idInUse(id) {
			return id
		}
	}
}

// counter hands out increasing numbers, and never one it has seen.
type counter struct{ last uint64 }

func (c *counter) next() uint64 {
	c.last++
	return c.last
}

// observe makes sure n is never handed out (n was seen in a record).
func (c *counter) observe(n uint64) { c.last = max(c.last, n) }

// reserveID returns a fresh id for a resource made partly outside the lock,
// kept from every other caller until unreserveID (called once the resource
// holds it, or gave up).
func (s *Service) reserveID(prefix string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.freshID(prefix)
	s.ids.reserved[id] = struct{}{}
	return id
}

func (s *Service) unreserveID(id string) {
	s.mu.Lock()
	delete(s.ids.reserved, id)
	s.mu.Unlock()
}
