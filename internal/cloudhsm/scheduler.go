package cloudhsm

import (
	"container/heap"
	"time"
)

// The scheduler: events, the agenda that orders them, and the loop that
// applies them when they fall due.

type eventKind int

const (
	evCluster       eventKind = iota // cluster state transition
	evClusterBackup                  // scheduled backup
	evHsm                            // HSM state transition
	evBackup                         // backup state transition
	evBackupExpire                   // retention expiry
)

type event struct {
	at     time.Time
	kind   eventKind
	tenant Tenant
	id     string // cluster or backup id
	hsm    string
}

// agenda is the queue of due work: the events the clock makes due. The
// service's write lock guards it (it is not safe for concurrent use).
// Every process serving an estate keeps the whole agenda, made from the
// records it holds, so that whichever applies an event first does it, and
// the others, seeing the resource's due time moved, skip it (see apply).
type agenda interface {
	// add queues e.
	add(e event)
	// peek returns the earliest event, if any.
	peek() (event, bool)
	// pop removes and returns the earliest event.
	pop() event
	// bulk queues events without ordering them until the next sort,
	// which scheduleAll calls once.
	bulk(e event)
	sort()
}

// eventHeap is the agenda of a process: a binary heap by due time.
type eventHeap []event

func (h eventHeap) Len() int { return len(h) }

func (h eventHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }

func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }

func (h *eventHeap) Push(x any) { *h = append(*h, x.(event)) }

func (h *eventHeap) Pop() any {
	old := *h
	n := len(old)
	x := old[n-1]
	*h = old[:n-1]
	return x
}

func (h *eventHeap) add(e event) { heap.Push(h, e) }

func (h *eventHeap) peek() (event, bool) {
	if len(*h) == 0 {
		return event{}, false
	}
	return (*h)[0], true
}

func (h *eventHeap) pop() event { return heap.Pop(h).(event) }

func (h *eventHeap) bulk(e event) { *h = append(*h, e) }

func (h *eventHeap) sort() { heap.Init(h) }

// schedule queues an event unless the same one is already queued: marker
// is the resource's record of the time it last queued for this kind of
// event (apply clears it when the event fires).
func (s *Service) schedule(e event, marker *int64) {
	if e.at.IsZero() || *marker == e.at.UnixNano() {
		return
	}
	*marker = e.at.UnixNano()
	if s.loading {
		s.agenda.bulk(e) // scheduleAll sorts once
		return
	}
	s.agenda.add(e)
	s.updateNextDue()
}

func (s *Service) updateNextDue() {
	first, ok := s.agenda.peek()
	if !ok {
		s.nextDue.Store(1<<63 - 1)
		return
	}
	next := first.at.UnixNano()
	if s.nextDue.Swap(next) > next {
		// The scheduler may be asleep until a later time (an hour when
		// nothing was due): without a request to catch up on the way, the
		// transition would wait for it.
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// scheduleAll queues the events of every loaded resource, building the heap
// in one pass.
func (s *Service) scheduleAll() {
	s.loading = true
	for _, ts := range s.tenants {
		for _, c := range ts.clusterOrder {
			s.scheduleCluster(c)
		}
		for _, b := range ts.backupOrder {
			s.scheduleBackup(b)
		}
	}
	s.loading = false
	s.agenda.sort()
	s.updateNextDue()
}

func (s *Service) scheduleCluster(c *Cluster) {
	s.schedule(event{at: c.Due, kind: evCluster, tenant: c.Tenant, id: c.ID}, &c.queuedDue)
	s.schedule(event{at: c.NextBackup, kind: evClusterBackup, tenant: c.Tenant, id: c.ID}, &c.queuedBackup)
	for _, h := range c.Hsms {
		s.scheduleHsm(c, h)
	}
}

func (s *Service) scheduleHsm(c *Cluster, h *Hsm) {
	s.schedule(event{at: h.Due, kind: evHsm, tenant: c.Tenant, id: c.ID, hsm: h.ID}, &h.queuedDue)
}

func (s *Service) scheduleBackup(b *Backup) {
	s.schedule(event{at: b.Due, kind: evBackup, tenant: b.Tenant, id: b.ID}, &b.queuedDue)
	s.schedule(event{at: b.ExpireAt, kind: evBackupExpire, tenant: b.Tenant, id: b.ID}, &b.queuedExpire)
}

// run wakes at the earliest due event (or when the clock moves) and applies
// every transition that is due. With a shared store it also looks for
// changes made elsewhere every RefreshInterval, and only the lease holder
// applies due transitions (every process applies those due to what it
// reads).
func (s *Service) run() {
	defer close(s.done)
	moved := s.clock.Subscribe()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	refreshing := refreshLog{log: s.log}
	for {
		timer.Reset(s.sleep())
		select {
		case <-s.stop:
			return
		case <-moved:
		case <-s.wake:
		case <-timer.C:
		}
		leader := true
		if s.shared != nil {
			refreshing.report(s.refresh())
			leader = s.shared.Leader()
		}
		due := s.clock.Now().UnixNano() >= s.nextDue.Load()
		if (leader && due) || s.clock.Generation() != s.clockKept.Load() {
			if err := s.CatchUp(); err != nil {
				s.log.Error("persist scheduled transitions", "err", err)
			}
		}
	}
}

// sleep is how long the scheduler may sleep: until the next due event (an
// hour at most, nothing while the clock is frozen), and no longer than the
// refresh interval with a shared store. A process that does not hold the
// lease leaves due events to the one that does (run applies them only
// there), so it sleeps the whole interval: due events stay queued until a
// request catches up, and waking for them would only spin.
func (s *Service) sleep() time.Duration {
	wait := time.Hour
	follower := false
	if s.shared != nil {
		wait = s.cfg.RefreshInterval
		if wait <= 0 {
			wait = 250 * time.Millisecond
		}
		follower = !s.shared.Leader()
	}
	if !s.clock.Frozen() && !follower {
		if d := time.Duration(s.nextDue.Load() - s.clock.Now().UnixNano()); d < wait {
			wait = d
		}
	}
	return max(wait, time.Millisecond)
}

// refreshLog logs the background refreshes' failures once, and their
// recovery, rather than every few hundred milliseconds.
type refreshLog struct {
	log interface {
		Error(string, ...any)
		Info(string, ...any)
	}
	failed bool
}

func (r *refreshLog) report(err error) {
	switch {
	case err != nil && !r.failed:
		r.log.Error("the shared store does not answer; requests fail until it does", "err", err)
	case err == nil && r.failed:
		r.log.Info("the shared store answers again")
	}
	r.failed = err != nil
}

// CatchUp applies every transition due at the clock's current time and waits
// until the changes are durable. Tests and the admin API call it after
// advancing the clock.
func (s *Service) CatchUp() error {
	return s.commit(CauseClock, func(time.Time, *pending) error { return nil })
}

// catchUpLocked applies due events in time order. Each event is checked
// against the resource's current due time, so stale events are ignored.
// The changes are stamped with CauseClock and each event's due time.
func (s *Service) catchUpLocked(now time.Time, p *pending) {
	cause, at := p.cause, p.at
	p.cause = CauseClock
	for {
		e, ok := s.agenda.peek()
		if !ok || e.at.After(now) {
			break
		}
		s.agenda.pop()
		p.at = e.at
		s.apply(e, p)
	}
	p.cause, p.at = cause, at
	s.updateNextDue()
}

func (s *Service) apply(e event, p *pending) {
	ts := s.lookupTenant(e.tenant)
	if ts == nil {
		return
	}
	fired := func(marker *int64) {
		if *marker == e.at.UnixNano() {
			*marker = 0
		}
	}
	switch e.kind {
	case evCluster:
		if c := ts.clusters[e.id]; c != nil {
			fired(&c.queuedDue)
			if c.Due.Equal(e.at) {
				s.advanceCluster(ts, c, e.at, p)
			}
		}
	case evClusterBackup:
		if c := ts.clusters[e.id]; c != nil {
			fired(&c.queuedBackup)
			if c.NextBackup.Equal(e.at) {
				s.scheduledBackup(c, e.at, p)
			}
		}
	case evHsm:
		if c := ts.clusters[e.id]; c != nil {
			for _, h := range c.Hsms {
				if h.ID == e.hsm {
					fired(&h.queuedDue)
					if h.Due.Equal(e.at) {
						s.advanceHsm(c, h, e.at, p)
					}
					break
				}
			}
		}
	case evBackup:
		if b := ts.backups[e.id]; b != nil {
			fired(&b.queuedDue)
			if b.Due.Equal(e.at) {
				s.advanceBackup(ts, b, e.at, p)
			}
		}
	case evBackupExpire:
		if b := ts.backups[e.id]; b != nil {
			fired(&b.queuedExpire)
			if b.ExpireAt.Equal(e.at) {
				s.expireBackup(ts, b, e.at, p)
			}
		}
	}
}
