package cloudhsm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// Shared mode: several processes serve one estate from a store.Shared. The
// estate in memory is then a cache of the store's, which the store keeps
// current:
//
//   - every change runs inside the store's Exclusive, which first applies
//     what other processes changed (cacheView), so the rules are decided
//     on the whole estate; concurrent changes of this process share one
//     Exclusive (commitShared), as the embedded store shares one fsync;
//   - every read first waits for a refresh that started after it did
//     (refresh), so an answer given by any process is seen by every
//     request that starts after it;
//   - time is the store's clock plus the estate's kept offset;
//   - one process (the lease holder) applies due transitions in the
//     background; every process applies those due to what it reads.
//
// The cache is rebuilt from the store (stale) after a commit that failed
// once its changes were decided: the cache holds them, the store may not.

// sharedState is what a Service in shared mode keeps besides the estate.
type sharedState struct {
	// version is the store version the cache reflects; stale asks for a
	// full reload. Both are guarded by Service.mu.
	version uint64
	stale   bool
	// skew is the store's clock minus this process's (nanoseconds).
	skew atomic.Int64
	// local is this process's clock (nil: time.Now).
	local func() time.Time
	// observed is set once the store's clock has been read.
	observed atomic.Bool

	combine struct {
		mu      sync.Mutex
		queue   []*commitRequest
		running bool
	}
	rounds refreshRounds
}

// commitRequest is one change waiting for its turn in a shared commit.
type commitRequest struct {
	cause string
	fn    func(now time.Time, p *pending) error
	p     *pending
	err   error
	lead  chan struct{} // closed to make this request run the next batch
	done  chan struct{}
}

// storeTimeout bounds every call to a shared store, so that a request is
// answered (CloudHsmInternalFailureException) rather than hung when the
// database is away.
func (s *Service) storeTimeout() time.Duration {
	if s.cfg.StoreTimeout > 0 {
		return s.cfg.StoreTimeout
	}
	return defaultStoreTimeout
}

// defaultStoreTimeout is storeTimeout when Config.StoreTimeout is not set.
const defaultStoreTimeout = 5 * time.Second

// commitShared runs fn inside the store's Exclusive. Requests that arrive
// while a batch is being committed form the next batch, which the first of
// them runs: one transaction (one fsync) for all of them.
func (s *Service) commitShared(cause string, fn func(now time.Time, p *pending) error) ([]Change, error) {
	req := &commitRequest{cause: cause, fn: fn, lead: make(chan struct{}), done: make(chan struct{})}
	c := &s.sh.combine
	c.mu.Lock()
	c.queue = append(c.queue, req)
	if !c.running {
		c.running = true
		close(req.lead)
	}
	c.mu.Unlock()
	select {
	case <-req.done:
	case <-req.lead:
		c.mu.Lock()
		batch := c.queue
		c.queue = nil
		c.mu.Unlock()
		s.runBatch(batch)
		c.mu.Lock()
		if len(c.queue) > 0 {
			close(c.queue[0].lead)
		} else {
			c.running = false
		}
		c.mu.Unlock()
		<-req.done
	}
	if req.p == nil {
		return nil, req.err
	}
	return req.p.changes, req.err
}

// runBatch commits the requests of one batch in one Exclusive.
func (s *Service) runBatch(batch []*commitRequest) {
	ctx, cancel := context.WithTimeout(context.Background(), s.storeTimeout())
	defer cancel()
	s.mu.Lock()
	view := &cacheView{s: s}
	decided := false
	sy, err := s.shared.Exclusive(ctx, s.since(), view, func(storeNow time.Time) ([]store.Mutation, error) {
		decided = true
		s.observeStoreClock(storeNow, storeNow)
		now := s.clock.Now()
		var muts []store.Mutation
		for i, r := range batch {
			r.p = s.newPending(r.cause, now)
			if i == 0 {
				s.catchUpLocked(now, r.p)
			}
			r.err = r.fn(now, r.p)
			r.p.seal()
			muts = append(muts, r.p.muts...)
		}
		return muts, nil
	})
	changes := view.changes
	if err != nil {
		if decided {
			// The cache holds changes the store may not have.
			s.sh.stale = true
		}
		err = fmt.Errorf("persist: %w", err)
		for _, r := range batch {
			r.err, r.p = err, nil
		}
	} else {
		// The Exclusive refreshed the cache as Refresh does: from
		// scratch when it was stale, so it is not any more.
		s.sh.version, s.sh.stale = sy.Version, false
		for _, r := range batch {
			changes = append(changes, r.p.changes...)
		}
	}
	s.unlockAndAnnounce(changes)
	for _, r := range batch {
		if r.p != nil {
			r.p.finish()
		}
		close(r.done)
	}
}

// since is the version to refresh from: 0 (everything) when the cache is
// stale. s.mu is held.
func (s *Service) since() uint64 {
	if s.sh.stale {
		return 0
	}
	return s.sh.version
}

// refreshRounds lets concurrent reads share refreshes: a read waits for a
// round that started after it arrived (one that started before may have
// read the store before the change the reader must see), and starts one
// itself when none is running.
type refreshRounds struct {
	mu                sync.Mutex
	cond              sync.Cond
	started, finished uint64
	running           bool
	err               error // the last finished round's
}

// refresh brings the cache up to date as of a moment after it was called.
func (s *Service) refresh() error {
	r := &s.sh.rounds
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cond.L == nil {
		r.cond.L = &r.mu
	}
	target := r.started + 1
	for r.finished < target {
		if r.running {
			r.cond.Wait()
			continue
		}
		r.running = true
		r.started++
		round := r.started
		r.mu.Unlock()
		err := s.refreshOnce()
		r.mu.Lock()
		r.running, r.finished, r.err = false, round, err
		r.cond.Broadcast()
	}
	return r.err
}

// refreshOnce reads what changed in the store and applies it to the cache.
func (s *Service) refreshOnce() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.storeTimeout())
	defer cancel()
	s.mu.RLock()
	since := s.since()
	s.mu.RUnlock()
	buf := &bufferedView{}
	before := s.localNow()
	sy, err := s.shared.Refresh(ctx, since, buf)
	if err != nil {
		return fmt.Errorf("refresh from the shared store: %w", err)
	}
	s.observeStoreClock(sy.Now, before)
	if !buf.reset && len(buf.records) == 0 {
		// Nothing changed: the usual case, which needs no write lock
		// (readers would wait for it).
		s.mu.RLock()
		current := sy.Version <= s.sh.version && !s.sh.stale
		s.mu.RUnlock()
		if current {
			return nil
		}
	}
	s.mu.Lock()
	if sy.Version <= s.sh.version && !s.sh.stale {
		// A commit of this process got there meanwhile: it applied
		// everything up to a later version.
		s.mu.Unlock()
		return nil
	}
	view := &cacheView{s: s}
	err = buf.replay(view)
	if err == nil {
		s.sh.version, s.sh.stale = sy.Version, false
	} else {
		s.sh.stale = true
	}
	s.unlockAndAnnounce(view.changes)
	return err
}

// observeStoreClock updates the estimate of the store's clock from a
// reading storeNow taken during a call that started at sentAt (local).
func (s *Service) observeStoreClock(storeNow, sentAt time.Time) {
	if storeNow.IsZero() {
		return
	}
	local := s.localNow()
	mid := sentAt.Add(local.Sub(sentAt) / 2)
	if sentAt.Equal(storeNow) { // inside Exclusive: no local send time
		mid = local
	}
	s.sh.skew.Store(int64(storeNow.Sub(mid)))
	s.sh.observed.Store(true)
}

// localNow is this process's clock (Options.LocalClock).
func (s *Service) localNow() time.Time {
	if s.sh.local != nil {
		return s.sh.local()
	}
	return time.Now()
}

// storeClock is the real time of a shared estate: this process's clock
// corrected to the store's, never going back.
func (s *Service) storeClock() func() time.Time {
	var last atomic.Int64
	return func() time.Time {
		if !s.sh.observed.Load() {
			// Not read the store's clock yet (while the first refresh
			// runs): no reading to keep monotonic against.
			return s.localNow()
		}
		t := s.localNow().Add(time.Duration(s.sh.skew.Load())).UnixNano()
		for {
			prev := last.Load()
			if t <= prev {
				return time.Unix(0, prev)
			}
			if last.CompareAndSwap(prev, t) {
				return time.Unix(0, t)
			}
		}
	}
}

// bufferedView keeps what a Refresh hands over until the lock is taken.
type bufferedView struct {
	reset   bool
	records []store.Record
}

func (b *bufferedView) Reset() { b.reset, b.records = true, nil }

func (b *bufferedView) Apply(kind, key string, value []byte) error {
	b.records = append(b.records, store.Record{Kind: kind, Key: key, Value: value})
	return nil
}

func (b *bufferedView) replay(v store.View) error {
	if b.reset {
		v.Reset()
	}
	for _, r := range b.records {
		if err := v.Apply(r.Kind, r.Key, r.Value); err != nil {
			return err
		}
	}
	return nil
}

// cacheView applies a shared store's records to the Service's cache (s.mu
// held for writing), noting what changed for the feed.
type cacheView struct {
	s       *Service
	changes []Change
}

// Reset drops the whole cache: the store hands over the whole estate next.
func (v *cacheView) Reset() {
	s := v.s
	s.tenants = map[Tenant]*tenantState{}
	reserved := s.ids.reserved // held by requests still making resources
	s.ids = newIDRegistry()
	s.ids.reserved = reserved
	s.agenda = &eventHeap{}
	s.subnetSets = nil
	s.meta = map[string]string{}
	s.updateNextDue()
	v.changes = append(v.changes, Change{Resource: ResourceEstate, At: s.clock.Now(), Cause: CauseReplica})
}

// Apply implements store.View.
func (v *cacheView) Apply(kind, key string, value []byte) error {
	switch kind {
	case kindCluster:
		return v.cluster(key, value)
	case kindBackup:
		return v.backup(key, value)
	case kindMeta:
		return v.meta(key, value)
	case kindSubnet:
		return nil // the network provider's, kept through Placements (never refreshed)
	}
	return fmt.Errorf("record %s of unknown kind %q: the estate was written by a newer cloudhsm-local; run that version", key, kind)
}

// parseRecordKey splits a cluster or backup key (see recordKey).
func parseRecordKey(key string) (Tenant, uint64, bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 3 {
		return Tenant{}, 0, false
	}
	seq, err := strconv.ParseUint(parts[2], 16, 64)
	return Tenant{Account: parts[0], Region: parts[1]}, seq, err == nil
}

func (v *cacheView) cluster(key string, value []byte) error {
	s := v.s
	t, seq, ok := parseRecordKey(key)
	if !ok {
		return fmt.Errorf("cluster record key %q is not account/region/sequence", key)
	}
	var old *Cluster
	if ts := s.lookupTenant(t); ts != nil {
		if i := searchSeq(ts.clusterOrder, seq, clusterSeq); i < len(ts.clusterOrder) && ts.clusterOrder[i].Seq == seq {
			old = ts.clusterOrder[i]
		}
	}
	at := s.clock.Now()
	if value == nil {
		if old != nil {
			s.removeCluster(old)
			v.changes = clusterGone(v.changes, old, at, CauseReplica)
		}
		return nil
	}
	c, err := s.codec.DecodeOwnedCluster(value)
	if err != nil {
		return fmt.Errorf("decode cluster %s: %w", key, err)
	}
	if old != nil && old.Version == c.Version {
		return nil // this process wrote it, or has it already
	}
	c.Subnets = s.internSubnets(c.Subnets)
	if old != nil {
		s.replaceCluster(old, c)
		keepClusterMarks(old, c)
		for _, h := range old.Hsms {
			if hsmIndex(c.Hsms, h.ID) < 0 {
				v.changes = hsmGone(v.changes, c, h, at, CauseReplica)
			}
		}
	} else {
		s.insertCluster(c)
	}
	s.versions.observe(c.Version)
	s.scheduleCluster(c)
	v.changes = clusterChanges(v.changes, c, at, CauseReplica)
	return nil
}

// keepClusterMarks carries over to c, the decoded newer copy of old, what
// only memory holds: the states last announced, and the events already
// queued (the agenda would otherwise queue them again at each write).
func keepClusterMarks(old, c *Cluster) {
	c.shown, c.queuedDue, c.queuedBackup = old.shown, old.queuedDue, old.queuedBackup
	for _, h := range c.Hsms {
		if i := hsmIndex(old.Hsms, h.ID); i >= 0 {
			h.shown, h.queuedDue = old.Hsms[i].shown, old.Hsms[i].queuedDue
		}
	}
}

func hsmIndex(hs []*Hsm, id string) int {
	for i, h := range hs {
		if h.ID == id {
			return i
		}
	}
	return -1
}

func (v *cacheView) backup(key string, value []byte) error {
	s := v.s
	t, seq, ok := parseRecordKey(key)
	if !ok {
		return fmt.Errorf("backup record key %q is not account/region/sequence", key)
	}
	var old *Backup
	if ts := s.lookupTenant(t); ts != nil {
		if i := searchSeq(ts.backupOrder, seq, backupSeq); i < len(ts.backupOrder) && ts.backupOrder[i].Seq == seq {
			old = ts.backupOrder[i]
		}
	}
	at := s.clock.Now()
	if value == nil {
		if old != nil {
			s.removeBackup(old)
			v.changes = backupGone(v.changes, old, at, CauseReplica)
		}
		return nil
	}
	if old != nil && bytes.Equal(s.codec.EncodeBackup(old), value) {
		return nil // this process wrote it, or has it already
	}
	b, err := s.codec.DecodeOwnedBackup(value)
	if err != nil {
		return fmt.Errorf("decode backup %s: %w", key, err)
	}
	if old != nil {
		s.replaceBackup(old, b)
		b.shown, b.queuedDue, b.queuedExpire = old.shown, old.queuedDue, old.queuedExpire
	} else {
		s.insertBackup(b)
	}
	s.scheduleBackup(b)
	v.changes = backupChanges(v.changes, b, at, CauseReplica)
	return nil
}

func (v *cacheView) meta(key string, value []byte) error {
	s := v.s
	if value == nil {
		delete(s.meta, key)
		return nil
	}
	s.meta[key] = string(value)
	if name, ok := keptName(key); ok {
		v.changes = append(v.changes, Change{Resource: ResourceKept, ID: name, At: s.clock.Now(), Cause: CauseReplica})
		return nil
	}
	switch key {
	case metaSeq:
		s.observeSeqFloor(string(value))
	case metaClock:
		wasFrozen, err := s.restoreKeptClock(value)
		if err != nil {
			return err
		}
		v.changes = append(v.changes, Change{Resource: ResourceClock, ID: "clock", From: clockMode(wasFrozen), To: clockMode(s.clockMode), At: s.clock.Now(), Cause: CauseReplica})
	}
	return nil
}

// sharedPlacements keeps learned subnets in a shared store (see
// store.Shared's SavePlacements).
type sharedPlacements struct {
	st      store.Shared
	codec   Codec
	timeout time.Duration
}

func (sp sharedPlacements) Save(t network.Tenant, known int, subnets []network.Subnet) ([]network.Subnet, error) {
	muts := make([]store.Mutation, 0, len(subnets))
	for _, sn := range subnets {
		b, err := sp.codec.EncodeSubnet(Tenant(t), sn)
		if err != nil {
			return nil, fmt.Errorf("encode subnet %s: %w", sn.ID, err)
		}
		muts = append(muts, store.Mutation{Kind: kindSubnet, Key: subnetKey(Tenant(t), sn.ID), Value: b})
	}
	ctx, cancel := context.WithTimeout(context.Background(), sp.timeout)
	defer cancel()
	held, err := sp.st.SavePlacements(ctx, t.Account+"/"+t.Region+"/", known, muts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errStoreCause, err)
	}
	if held == nil {
		return nil, nil
	}
	missed := make([]network.Subnet, 0, len(held))
	for _, r := range held {
		_, sn, err := sp.codec.DecodeSubnet(r.Value)
		if err != nil {
			return nil, fmt.Errorf("decode subnet %s: %w", r.Key, err)
		}
		missed = append(missed, sn)
	}
	if len(missed) == 0 {
		return nil, errors.New("the store reported placements it did not return")
	}
	return missed, nil
}
