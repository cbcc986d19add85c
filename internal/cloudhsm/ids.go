package cloudhsm

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// The numbers and names the service hands out live here, each made one way:
//
//   - ids (cluster-, hsm-, backup- and 11 base32 characters) come from
//     idRegistry.fresh, unique across the whole server (every account and
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

// idRegistry knows every id in use: held by a resource of the estate, or
// reserved for one being made outside the lock (CreateCluster makes the
// security group, CreateHsm the keys, before they commit).
type idRegistry struct {
	// held counts the resources holding each id: an imported estate may
	// hold one id in two tenants.
	held     map[string]int32
	reserved map[string]struct{}
}

func newIDRegistry() idRegistry {
	return idRegistry{held: map[string]int32{}, reserved: map[string]struct{}{}}
}

// fresh returns a new id with prefix that no resource holds or reserves.
// It does not hold it: the resource that takes it does (see Service.hold).
func (r *idRegistry) fresh(prefix string) string {
	for {
		id := newID(prefix)
		if !r.inUse(id) {
			return id
		}
	}
}

func (r *idRegistry) inUse(id string) bool {
	_, reserved := r.reserved[id]
	return reserved || r.held[id] > 0
}

// reserve returns a fresh id kept from every other caller until unreserve.
func (r *idRegistry) reserve(prefix string) string {
	id := r.fresh(prefix)
	r.reserved[id] = struct{}{}
	return id
}

func (r *idRegistry) unreserve(id string) { delete(r.reserved, id) }

func (r *idRegistry) hold(id string) { r.held[id]++ }

func (r *idRegistry) release(id string) {
	if r.held[id]--; r.held[id] <= 0 {
		delete(r.held, id)
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
	return s.ids.reserve(prefix)
}

func (s *Service) unreserveID(id string) {
	s.mu.Lock()
	s.ids.unreserve(id)
	s.mu.Unlock()
}
