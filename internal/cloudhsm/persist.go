package cloudhsm

import (
	"fmt"
	"strconv"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// Record kinds in the store.
const (
	kindCluster = "cluster"
	kindBackup  = "backup"
	kindMeta    = "meta"
	kindSubnet  = "subnet"
)

// PersistSubnet is the network.Learned persistence hook: it makes a learned
// subnet durable.
func PersistSubnet(st store.Store, codec Codec) func(network.Tenant, network.Subnet) error {
	return func(t network.Tenant, sn network.Subnet) error {
		b, err := codec.EncodeSubnet(Tenant(t), sn)
		if err != nil {
			return fmt.Errorf("encode subnet: %w", err)
		}
		return st.Submit([]store.Mutation{{Kind: kindSubnet, Key: subnetKey(Tenant(t), sn.ID), Value: b}})()
	}
}

// subnetKey is the store key of a subnet learned for t.
func subnetKey(t Tenant, subnetID string) string { return t.Account + "/" + t.Region + "/" + subnetID }

// pending collects the mutations of one operation.
type pending struct {
	codec Codec
	// version is the service's (see Service.version); held under the write lock.
	version *uint64
	// dropped is set when a record was dropped (see seqFloor).
	dropped bool
	muts    []store.Mutation
	// after holds work that must not run under the lock (calls to the
	// network provider, which may be a remote EC2); it runs once the lock
	// is released.
	after []func()
}

// finish runs the work deferred until after the lock.
func (p *pending) finish() {
	for _, f := range p.after {
		f()
	}
}

func (p *pending) cluster(c *Cluster) {
	*p.version++
	c.Version = *p.version
	p.muts = append(p.muts, store.Mutation{Kind: kindCluster, Key: recordKey(c.Tenant, c.Seq), Value: p.codec.EncodeCluster(c)})
}

// subnet records a subnet the learned provider adopted for t.
func (p *pending) subnet(t Tenant, sn network.Subnet) error {
	b, err := p.codec.EncodeSubnet(t, sn)
	if err != nil {
		return fmt.Errorf("encode subnet %s: %w", sn.ID, err)
	}
	p.muts = append(p.muts, store.Mutation{Kind: kindSubnet, Key: subnetKey(t, sn.ID), Value: b})
	return nil
}

func (p *pending) dropCluster(c *Cluster) {
	p.muts = append(p.muts, store.Mutation{Kind: kindCluster, Key: recordKey(c.Tenant, c.Seq)})
	p.seqFloor()
}

// seqFloor asks submit to persist the creation sequence reached, so that a
// restart after records were dropped never hands out a Seq again: a
// NextToken made before would silently skip the new resources. (Once per
// change: a reset drops thousands of records.)
func (p *pending) seqFloor() { p.dropped = true }

func (p *pending) backup(b *Backup) {
	p.muts = append(p.muts, store.Mutation{Kind: kindBackup, Key: recordKey(b.Tenant, b.Seq), Value: p.codec.EncodeBackup(b)})
}

func (p *pending) dropBackup(b *Backup) {
	p.muts = append(p.muts, store.Mutation{Kind: kindBackup, Key: recordKey(b.Tenant, b.Seq)})
	p.seqFloor()
}

// recordKey keys a record by its tenant and creation sequence number, so
// new records append at the end of the store's B+tree instead of landing on
// random pages (random keys cost about three times as much per commit).
func recordKey(t Tenant, seq uint64) string {
	return t.Account + "/" + t.Region + "/" + fmt.Sprintf("%016x", seq)
}

// submit enqueues the collected mutations (under the lock) and returns the
// wait for durability.
func (s *Service) submit(p *pending) func() error {
	if p.dropped {
		p.muts = append(p.muts, store.Mutation{Kind: kindMeta, Key: "seq", Value: []byte(strconv.FormatUint(s.seq, 10))})
	}
	if len(p.muts) == 0 {
		return func() error { return nil }
	}
	return s.store.Submit(p.muts)
}

// newPending starts the writes of one change; s.mu is held for writing.
func (s *Service) newPending() *pending {
	return &pending{codec: s.codec, version: &s.version}
}

// commit runs fn under the write lock after catching up with the clock, then
// waits (outside the lock) until its writes are durable.
func (s *Service) commit(fn func(now time.Time, p *pending) error) error {
	s.mu.Lock()
	now := s.clock.Now()
	p := s.newPending()
	s.catchUpLocked(now, p)
	err := fn(now, p)
	wait := s.submit(p)
	s.mu.Unlock()
	p.finish()
	if werr := wait(); werr != nil {
		return fmt.Errorf("persist: %w", werr)
	}
	return err
}

// read runs fn under the read lock, after catching up with the clock.
func (s *Service) read(fn func(now time.Time) error) error {
	now := s.clock.Now()
	if now.UnixNano() >= s.nextDue.Load() {
		s.mu.Lock()
		p := s.newPending()
		now = s.clock.Now()
		s.catchUpLocked(now, p)
		wait := s.submit(p)
		s.mu.Unlock()
		p.finish()
		if err := wait(); err != nil {
			return fmt.Errorf("persist: %w", err)
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return fn(now)
}
