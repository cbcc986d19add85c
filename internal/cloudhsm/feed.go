package cloudhsm

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Resource kinds of a Change.
const (
	ResourceCluster = "cluster"
	ResourceHsm     = "hsm"
	ResourceBackup  = "backup"
	ResourceClock   = "clock"
	// ResourceEstate: anything may have changed (this process reloaded
	// the whole estate from a shared store).
	ResourceEstate = "estate"
	// ResourceKept: a value kept with the estate changed (see ChangeKept);
	// ID is its name.
	ResourceKept = "kept"
)

// Causes of a Change, beside the name of the API operation that made it
// (such as "CreateCluster").
const (
	// CauseClock: a transition that fell due on the simulated clock (an
	// in-progress state ending, a scheduled backup, retention, expiry).
	CauseClock = "clock"
	// CauseReplica: a change made by another process serving the same
	// estate, seen when this one refreshed its view.
	CauseReplica = "replica"
	// CauseAdmin prefixes the admin operations' causes ("admin:reset").
	CauseAdmin = "admin:"
)

// KnownCauses lists the causes the service stamps changes with (an
// operation, the clock, another replica, an admin operation), so that a
// record format can write one as a small number. It is never changed.
var KnownCauses = []string{
	CauseClock, CauseReplica,
	"CreateCluster", "ModifyCluster", "DeleteCluster", "CreateHsm", "DeleteHsm", "InitializeCluster",
	"CopyBackupToRegion", "DeleteBackup", "RestoreBackup", "ModifyBackupAttributes",
	"PutResourcePolicy", "DeleteResourcePolicy", "TagResource", "UntagResource",
	CauseAdmin + "activate", CauseAdmin + "clock", CauseAdmin + "import", CauseAdmin + "reset",
	CauseAdmin + "degrade", CauseAdmin + "heal", CauseAdmin + "made-once", CauseAdmin + "faults",
}

// Change is one change of the estate: a resource created, changed, or gone.
type Change struct {
	Resource  string // ResourceCluster, ResourceHsm, ResourceBackup or ResourceClock
	Tenant    Tenant // zero for the clock
	ID        string // the cluster, HSM or backup id
	ClusterID string // for an HSM, its cluster
	// From and To are the states before and after: From is "" for a
	// resource created, To is "" for one gone, and From == To for a
	// change of something else (tags, retention, a policy, the clock).
	From, To string
	At       time.Time // the simulated time it happened
	Cause    string    // an API operation's name, CauseClock, CauseReplica or CauseAdmin+...
}

// Transition reports whether the change is a change of state.
func (c Change) Transition() bool { return c.From != c.To }

// Feed publishes the changes of one Service, in the order they became
// durable. Subscribers never slow the service down: a subscriber whose
// buffer is full misses changes, and its Missed count says how many.
//
// Feed is safe for concurrent use.
type Feed struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
}

// Subscription receives changes on C until Close.
type Subscription struct {
	C      <-chan Change
	c      chan Change
	feed   *Feed
	missed atomic.Int64
	once   sync.Once
}

// Subscribe returns a subscription whose channel buffers up to buffer
// changes (at least 1).
func (f *Feed) Subscribe(buffer int) *Subscription {
	ch := make(chan Change, max(buffer, 1))
	sub := &Subscription{C: ch, c: ch, feed: f}
	f.mu.Lock()
	if f.subs == nil {
		f.subs = map[*Subscription]struct{}{}
	}
	f.subs[sub] = struct{}{}
	f.mu.Unlock()
	return sub
}

// Missed returns how many changes did not fit in the buffer so far.
func (s *Subscription) Missed() int64 { return s.missed.Load() }

// Close ends the subscription and closes C. It is safe to call more than once.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.feed.mu.Lock()
		delete(s.feed.subs, s)
		close(s.c)
		s.feed.mu.Unlock()
	})
}

// Subscribers returns how many subscriptions are open.
func (f *Feed) Subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

func (f *Feed) publish(changes []Change) {
	if len(changes) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for sub := range f.subs {
		for _, c := range changes {
			select {
			case sub.c <- c:
			default:
				sub.missed.Add(1)
			}
		}
	}
}

// logChanges writes the changes to the log: those the clock, the admin API,
// an import or another replica made at info (nobody asked for them in a
// request, so nothing else says they happened), those an API request made
// at debug (its request line tells already).
func logChanges(log *slog.Logger, changes []Change) {
	if len(changes) > maxLoggedChanges {
		logSummary(log, changes)
		return
	}
	for _, c := range changes {
		if c.Resource == ResourceKept {
			continue // its owner logs what it means
		}
		level := slog.LevelInfo
		if !isBackgroundCause(c.Cause) {
			level = slog.LevelDebug
		}
		if !log.Enabled(context.Background(), level) {
			continue
		}
		attrs := []slog.Attr{slog.String("resource", c.Resource), slog.String("id", c.ID)}
		if c.Resource != ResourceClock {
			attrs = append(attrs, slog.String("account", c.Tenant.Account), slog.String("region", c.Tenant.Region))
		}
		if c.ClusterID != "" {
			attrs = append(attrs, slog.String("cluster", c.ClusterID))
		}
		attrs = append(attrs, slog.String("from", c.From), slog.String("to", c.To),
			slog.String("at", c.At.UTC().Format(time.RFC3339Nano)), slog.String("cause", c.Cause))
		log.LogAttrs(context.Background(), level, changeMessage(c), attrs...)
	}
}

// maxLoggedChanges is how many changes of one commit are logged one by one;
// more (a reset, an import, a reload) are summed up in one line.
const maxLoggedChanges = 50

func logSummary(log *slog.Logger, changes []Change) {
	counts := map[string]int{}
	var cause string
	var at time.Time
	for _, c := range changes {
		counts[changeMessage(c)]++
		cause, at = c.Cause, c.At
	}
	attrs := []slog.Attr{slog.Int("changes", len(changes)), slog.String("cause", cause), slog.String("at", at.UTC().Format(time.RFC3339Nano))}
	for msg, n := range counts {
		attrs = append(attrs, slog.Int(strings.ReplaceAll(msg, " ", "_"), n))
	}
	log.LogAttrs(context.Background(), slog.LevelInfo, "estate changed", attrs...)
}

func isBackgroundCause(cause string) bool {
	return cause == CauseClock || cause == CauseReplica || len(cause) > len(CauseAdmin) && cause[:len(CauseAdmin)] == CauseAdmin
}

func changeMessage(c Change) string {
	switch {
	case c.Resource == ResourceClock:
		return "clock changed"
	case c.From == "":
		return c.Resource + " created"
	case c.To == "":
		return c.Resource + " removed"
	case c.From != c.To:
		return c.Resource + " state changed"
	}
	return c.Resource + " changed"
}

// The changes a write makes, built one way whether this process made the
// write (pending) or another did (cacheView): each appends to out and
// marks what it announced as shown.

// clusterChanges announces c as written (its state since shown) and each
// HSM whose state changed.
func clusterChanges(out []Change, c *Cluster, at time.Time, cause string) []Change {
	out = append(out, Change{Resource: ResourceCluster, Tenant: c.Tenant, ID: c.ID, From: c.shown, To: c.State, At: at, Cause: cause})
	c.shown = c.State
	for _, h := range c.Hsms {
		if h.State != h.shown {
			out = append(out, Change{Resource: ResourceHsm, Tenant: c.Tenant, ID: h.ID, ClusterID: c.ID, From: h.shown, To: h.State, At: at, Cause: cause})
			h.shown = h.State
		}
	}
	return out
}

// hsmGone announces that h left c.
func hsmGone(out []Change, c *Cluster, h *Hsm, at time.Time, cause string) []Change {
	return append(out, Change{Resource: ResourceHsm, Tenant: c.Tenant, ID: h.ID, ClusterID: c.ID, From: h.shown, At: at, Cause: cause})
}

// clusterGone announces that c left, with its HSMs.
func clusterGone(out []Change, c *Cluster, at time.Time, cause string) []Change {
	for _, h := range c.Hsms {
		out = hsmGone(out, c, h, at, cause)
	}
	return append(out, Change{Resource: ResourceCluster, Tenant: c.Tenant, ID: c.ID, From: c.shown, At: at, Cause: cause})
}

// backupChanges announces b as written.
func backupChanges(out []Change, b *Backup, at time.Time, cause string) []Change {
	out = append(out, Change{Resource: ResourceBackup, Tenant: b.Tenant, ID: b.ID, ClusterID: b.ClusterID, From: b.shown, To: b.State, At: at, Cause: cause})
	b.shown = b.State
	return out
}

// backupGone announces that b left.
func backupGone(out []Change, b *Backup, at time.Time, cause string) []Change {
	return append(out, Change{Resource: ResourceBackup, Tenant: b.Tenant, ID: b.ID, ClusterID: b.ClusterID, From: b.shown, At: at, Cause: cause})
}
