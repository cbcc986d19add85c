package cloudhsm

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
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

// Keys of the estate's meta records.
const (
	metaSeq         = "seq"          // the creation sequence reached (see pending.seqFloor)
	metaTokenSecret = "token-secret" // the key pagination tokens are signed with
	metaAuthority   = "authority"    // the simulated roots
	metaClock       = "clock"        // the clock's offset or frozen time
)

// Codec turns the estate's records into the store's bytes and back; the
// domain does not know the format. DecodeOwned* may keep the bytes given.
// Implementations are safe for concurrent use.
type Codec interface {
	EncodeCluster(*Cluster) []byte
	DecodeOwnedCluster([]byte) (*Cluster, error)
	EncodeBackup(*Backup) []byte
	DecodeOwnedBackup([]byte) (*Backup, error)
	EncodeSubnet(Tenant, network.Subnet) ([]byte, error)
	DecodeSubnet([]byte) (Tenant, network.Subnet, error)
	EncodeClock(clock.State) []byte
	DecodeClock([]byte) (clock.State, error)
}

// SubnetPlacements keeps a learned network provider's placements in st, as
// records of the estate (see network.Placements). With a store.Shared,
// Save reports the placements other processes made; otherwise the process
// that owns st is the only one that learns subnets, and it never does.
func SubnetPlacements(st store.Store, codec Codec) network.Placements {
	if sh, ok := st.(store.Shared); ok {
		return sharedPlacements{st: sh, codec: codec, timeout: defaultStoreTimeout}
	}
	return storePlacements{st: st, codec: codec}
}

type storePlacements struct {
	st    store.Store
	codec Codec
}

func (sp storePlacements) Save(t network.Tenant, _ int, subnets []network.Subnet) ([]network.Subnet, error) {
	muts := make([]store.Mutation, 0, len(subnets))
	for _, sn := range subnets {
		b, err := sp.codec.EncodeSubnet(Tenant(t), sn)
		if err != nil {
			return nil, fmt.Errorf("encode subnet %s: %w", sn.ID, err)
		}
		muts = append(muts, store.Mutation{Kind: kindSubnet, Key: subnetKey(Tenant(t), sn.ID), Value: b})
	}
	if err := sp.st.Submit(muts)(); err != nil {
		return nil, fmt.Errorf("%w: %w", errStoreCause, err)
	}
	return nil, nil
}

// errStoreCause marks the failures of the store under a network provider's
// placements: the service's failure, not the request's (see networkError).
var errStoreCause = errors.New("the store of learned subnets failed")

// subnetKey is the store key of a subnet learned for t.
func subnetKey(t Tenant, subnetID string) string { return t.Account + "/" + t.Region + "/" + subnetID }

// recordKey keys a record by its tenant and creation sequence number, so
// new records append at the end of the store's B+tree instead of landing on
// random pages (random keys cost about three times as much per commit).
func recordKey(t Tenant, seq uint64) string {
	return t.Account + "/" + t.Region + "/" + fmt.Sprintf("%016x", seq)
}

// pending is one change of the estate in the making: the records it
// writes, the changes it announces, and the work it leaves for after the
// lock. Every resource it touches goes through cluster, backup and the
// drop methods, which is how the change feed and each cluster's History
// see every change without the rules having to announce anything.
type pending struct {
	s *Service
	// cause and at are what the changes are stamped with: the operation
	// and now, or CauseClock and an event's due time while catching up.
	cause string
	at    time.Time
	// dropped is set when a record was dropped (see seqFloor).
	dropped bool
	// imported marks the writes of an import: clusters come with their
	// History, which they keep as it is.
	imported bool
	muts     []store.Mutation
	changes  []Change
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

// cluster writes c, and notes its changes of state and its HSMs'.
func (p *pending) cluster(c *Cluster) {
	if c.State != c.shown && !p.imported {
		c.addHistory(c.shown, c.State, p.at, p.cause)
	}
	p.changes = clusterChanges(p.changes, c, p.at, p.cause)
	c.Version = p.s.versions.next()
	p.muts = append(p.muts, store.Mutation{Kind: kindCluster, Key: recordKey(c.Tenant, c.Seq), Value: p.s.codec.EncodeCluster(c)})
}

// hsmGone notes that h left c (its record is c's).
func (p *pending) hsmGone(c *Cluster, h *Hsm) {
	p.changes = hsmGone(p.changes, c, h, p.at, p.cause)
}

func (p *pending) dropCluster(c *Cluster) {
	p.changes = clusterGone(p.changes, c, p.at, p.cause)
	p.muts = append(p.muts, store.Mutation{Kind: kindCluster, Key: recordKey(c.Tenant, c.Seq)})
	p.seqFloor()
}

// seqFloor asks submit to persist the creation sequence reached, so that a
// restart after records were dropped never hands out a Seq again: a
// NextToken made before would silently skip the new resources. (Once per
// change: a reset drops thousands of records.)
func (p *pending) seqFloor() { p.dropped = true }

func (p *pending) backup(b *Backup) {
	p.changes = backupChanges(p.changes, b, p.at, p.cause)
	p.muts = append(p.muts, store.Mutation{Kind: kindBackup, Key: recordKey(b.Tenant, b.Seq), Value: p.s.codec.EncodeBackup(b)})
}

func (p *pending) dropBackup(b *Backup) {
	p.changes = backupGone(p.changes, b, p.at, p.cause)
	p.muts = append(p.muts, store.Mutation{Kind: kindBackup, Key: recordKey(b.Tenant, b.Seq)})
	p.seqFloor()
}

// meta writes a meta record and keeps it in memory.
func (p *pending) meta(key string, value []byte) {
	p.s.meta[key] = string(value)
	p.muts = append(p.muts, store.Mutation{Kind: kindMeta, Key: key, Value: value})
}

// clock writes the clock's state when it changed since it was last kept,
// so that the estate's simulated time never goes back across a restart.
func (p *pending) clock() {
	st := p.s.clock.State()
	if st.Generation == p.s.clockKept.Load() {
		return
	}
	p.meta(metaClock, p.s.codec.EncodeClock(st))
	p.s.clockKept.Store(st.Generation)
	p.changes = append(p.changes, Change{Resource: ResourceClock, ID: "clock", From: clockMode(p.s.clockMode), To: clockMode(st.Frozen), At: p.s.clock.Now(), Cause: p.cause})
	p.s.clockMode = st.Frozen
}

func clockMode(frozen bool) string {
	if frozen {
		return "FROZEN"
	}
	return "RUNNING"
}

// seal adds what every change writes besides its resources: the clock's
// state when it changed, the sequence floor when records were dropped.
func (p *pending) seal() {
	p.clock()
	if p.dropped {
		p.meta(metaSeq, []byte(strconv.FormatUint(p.s.seq.last, 10)))
	}
}

// submit enqueues the collected mutations (under the lock) and returns the
// wait for durability.
func (s *Service) submit(p *pending) func() error {
	p.seal()
	if len(p.muts) == 0 {
		return func() error { return nil }
	}
	return s.store.Submit(p.muts)
}

// newPending starts one change of the estate; s.mu is held for writing.
func (s *Service) newPending(cause string, now time.Time) *pending {
	return &pending{s: s, cause: cause, at: now}
}

// commit runs fn under the write lock after catching up with the clock, then
// waits (outside the lock) until its writes are durable. cause names what
// the change is for (see Change.Cause). It returns fn's error, or the
// store's.
func (s *Service) commit(cause string, fn func(now time.Time, p *pending) error) error {
	_, err := s.commitChanges(cause, fn)
	return err
}

// commitChanges is commit, and it returns the changes made (also those the
// clock made due first).
func (s *Service) commitChanges(cause string, fn func(now time.Time, p *pending) error) ([]Change, error) {
	if s.shared != nil {
		return s.commitShared(cause, fn)
	}
	s.mu.Lock()
	now := s.clock.Now()
	p := s.newPending(cause, now)
	s.catchUpLocked(now, p)
	err := fn(now, p)
	wait := s.submit(p)
	s.unlockAndAnnounce(p.changes)
	p.finish()
	if werr := wait(); werr != nil {
		return p.changes, fmt.Errorf("persist: %w", werr)
	}
	return p.changes, err
}

// unlockAndAnnounce releases the write lock and hands changes to the feed
// and the log. The announcing lock is taken before the write lock is
// released, so changes are announced in the order they were made, while
// readers need not wait for the subscribers.
func (s *Service) unlockAndAnnounce(changes []Change) {
	if len(changes) == 0 {
		s.mu.Unlock()
		return
	}
	s.announceMu.Lock()
	s.mu.Unlock()
	logChanges(s.log, changes)
	s.feed.publish(changes)
	s.announceMu.Unlock()
}

// read runs fn under the read lock, after catching up with the clock (and,
// with a shared store, with what other processes changed).
func (s *Service) read(fn func(now time.Time) error) error {
	if s.shared != nil {
		if err := s.refresh(); err != nil {
			return err
		}
	}
	now := s.clock.Now()
	if now.UnixNano() >= s.nextDue.Load() || s.clock.Generation() != s.clockKept.Load() {
		if err := s.CatchUp(); err != nil {
			return err
		}
		now = s.clock.Now()
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return fn(now)
}
