package console

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/faults"
)

// Timings of the live streams.
const (
	// coalesce is how long the hub gathers changes before it tells the
	// streams: a burst (a clock advance that moves a thousand resources)
	// becomes one event, and one render of each page watched.
	coalesce = 100 * time.Millisecond
	// pollEvery is how often the hub looks at what the feed does not carry
	// (the fault rules, the request log) while streams are open.
	pollEvery = 250 * time.Millisecond
	// minGap is the least time between two events of one stream: each
	// event makes the page fetch itself again, and a busy estate (a change
	// every few milliseconds) must not make every open console do that
	// ten times a second. The first change after a quiet spell still goes
	// out at once.
	minGap = 400 * time.Millisecond
	// heartbeat keeps idle streams open through proxies and tells a
	// stream that its browser is gone.
	heartbeat  = 20 * time.Second
	writeLimit = 10 * time.Second
	// maxBatchItems bounds the ids one event names; beyond, it says "all".
	maxBatchItems = 64
	// DefaultMaxStreams is the default cap on open live streams.
	DefaultMaxStreams = 128
)

// Batch is what changed in one coalescing period, as a stream's event.
type Batch struct {
	Seq      uint64   `json:"seq"`
	Gen      uint64   `json:"gen"`                // the hub's generation when sent
	Reqs     uint64   `json:"reqs"`               // the request log's version when sent
	Clusters []string `json:"clusters,omitempty"` // ids of clusters changed (an HSM's or backup's cluster too)
	Backups  []string `json:"backups,omitempty"`
	Tenants  []string `json:"tenants,omitempty"` // "account/region"
	Estate   bool     `json:"estate,omitempty"`  // any change of a cluster, HSM or backup
	// Overview: a change the estate page shows (not a tag or a policy).
	Overview bool       `json:"overview,omitempty"`
	All      bool       `json:"all,omitempty"` // too many to name, or some were missed
	Clock    *clockJSON `json:"clock,omitempty"`
	Faults   bool       `json:"faults,omitempty"`
	Requests bool       `json:"requests,omitempty"`
}

type clockJSON struct {
	Now    int64 `json:"now"` // Unix milliseconds
	Frozen bool  `json:"frozen"`
}

func (b *Batch) empty() bool {
	return !b.Estate && !b.All && b.Clock == nil && !b.Faults && !b.Requests
}

func addID(list []string, id string, all *bool) []string {
	if id == "" || slices.Contains(list, id) {
		return list
	}
	if len(list) >= maxBatchItems {
		*all = true
		return list
	}
	return append(list, id)
}

// hub watches the estate's change feed (one subscription per console,
// whatever the number of streams), coalesces the changes and fans them out
// to the open streams. It never blocks the feed: a stream that does not
// keep up gets the changes merged into its next event.
type hub struct {
	svc      *cloudhsm.Service
	once     sync.Once
	sub      *cloudhsm.Subscription
	clock    func() clockJSON
	faults   *faults.Injector
	requests *RequestLog
	max      int

	// gen counts the changes seen (the estate's, the faults'); pages are
	// cached by it and by the request log's version (see pageCache).
	gen atomic.Uint64

	mu      sync.Mutex
	streams map[*stream]struct{}
	seq     uint64

	stop chan struct{}
	done chan struct{}
}

// feedBuffer is how many changes the hub's subscription holds; a burst
// beyond (a clock advance that moves thousands of resources) is told to
// the pages as "everything".
const feedBuffer = 1024

func newHub(svc *cloudhsm.Service, f *faults.Injector, reqs *RequestLog, max int) *hub {
	if max <= 0 {
		max = DefaultMaxStreams
	}
	h := &hub{svc: svc, faults: f, requests: reqs, max: max,
		streams: map[*stream]struct{}{}, stop: make(chan struct{}), done: make(chan struct{})}
	h.clock = func() clockJSON {
		return clockJSON{Now: svc.Clock().Now().UnixMilli(), Frozen: svc.Clock().Frozen()}
	}
	return h
}

// start subscribes to the feed, on the console's first request: a server
// whose console is never opened (most test servers) pays nothing for it.
// Changes made before need no telling: the first page reads the estate.
func (h *hub) start() {
	h.once.Do(func() {
		select {
		case <-h.stop:
			return
		default:
		}
		h.sub = h.svc.Feed().Subscribe(feedBuffer)
		go h.run()
	})
}

func (h *hub) close() {
	h.once.Do(func() {}) // never starts after this
	select {
	case <-h.stop:
		return
	default:
	}
	close(h.stop)
	if h.sub != nil {
		h.sub.Close()
		<-h.done
	}
	h.mu.Lock()
	for s := range h.streams {
		s.conn.Close()
	}
	h.mu.Unlock()
}

// touchFaults records a change the feed does not carry (a fault rule the
// console changed) and tells the streams at once.
func (h *hub) touchFaults() {
	h.gen.Add(1)
	h.broadcast(&Batch{Faults: true})
}

func (h *hub) run() {
	defer close(h.done)
	var batch *Batch
	var flush <-chan time.Time
	poll := time.NewTicker(pollEvery)
	defer poll.Stop()
	var missed int64
	var faultsSeen string
	var reqSeen uint64
	pending := func() *Batch {
		if batch == nil {
			batch = &Batch{}
			flush = time.After(coalesce)
		}
		return batch
	}
	for {
		select {
		case <-h.stop:
			return
		case c, ok := <-h.sub.C:
			if !ok {
				return
			}
			h.gen.Add(1)
			h.add(pending(), c)
		case <-flush:
			h.broadcast(batch)
			batch, flush = nil, nil
		case <-poll.C:
			if m := h.sub.Missed(); m != missed {
				missed = m
				h.gen.Add(1)
				pending().All = true
			}
			if h.count() == 0 {
				continue
			}
			if fp := faultsPrint(h.faults); fp != faultsSeen {
				faultsSeen = fp
				h.gen.Add(1)
				pending().Faults = true
			}
			if h.requests != nil {
				if v := h.requests.Version(); v != reqSeen {
					reqSeen = v
					pending().Requests = true
				}
			}
		}
	}
}

func (h *hub) add(b *Batch, c cloudhsm.Change) {
	if c.Resource == cloudhsm.ResourceClock {
		ck := h.clock()
		b.Clock = &ck
		return
	}
	b.Estate = true
	b.Overview = b.Overview || shownOnEstate(c)
	b.Tenants = addID(b.Tenants, c.Tenant.Account+"/"+c.Tenant.Region, &b.All)
	switch c.Resource {
	case cloudhsm.ResourceCluster:
		b.Clusters = addID(b.Clusters, c.ID, &b.All)
	case cloudhsm.ResourceHsm:
		b.Clusters = addID(b.Clusters, c.ClusterID, &b.All)
	case cloudhsm.ResourceBackup:
		b.Backups = addID(b.Backups, c.ID, &b.All)
		b.Clusters = addID(b.Clusters, c.ClusterID, &b.All)
	}
}

// shownOnEstate reports whether a change can alter the estate page: all
// but the changes of tags and resource policies, which it does not show.
func shownOnEstate(c cloudhsm.Change) bool {
	switch c.Cause {
	case "TagResource", "UntagResource", "PutResourcePolicy", "DeleteResourcePolicy":
		return c.Transition()
	}
	return true
}

// faultsPrint sums up the fault rules as they stand (hits included).
func faultsPrint(f *faults.Injector) string {
	if f == nil {
		return ""
	}
	var sb strings.Builder
	for _, r := range f.Rules() {
		fmt.Fprintf(&sb, "%s/%d/%d/%v;", r.ID, r.Hits, r.Remaining, r.Spent)
	}
	return sb.String()
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.streams)
}

func (h *hub) broadcast(b *Batch) {
	if b == nil || b.empty() {
		return
	}
	h.mu.Lock()
	h.seq++
	b.Seq = h.seq
	b.Gen = h.gen.Load()
	if h.requests != nil {
		b.Reqs = h.requests.Version()
	}
	for s := range h.streams {
		s.offer(b)
	}
	h.mu.Unlock()
}

// stream is one open live stream: a connection the console took over.
type stream struct {
	conn   net.Conn
	w      *bufio.Writer
	wants  func(*Batch) bool
	mu     sync.Mutex
	next   *Batch // merged batches not yet written
	notify chan struct{}
}

func (s *stream) offer(b *Batch) {
	if !s.wants(b) {
		return
	}
	s.mu.Lock()
	if s.next == nil {
		cp := *b
		s.next = &cp
	} else {
		merge(s.next, b)
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func merge(into, b *Batch) {
	into.Seq, into.Gen, into.Reqs = b.Seq, b.Gen, b.Reqs
	into.Estate = into.Estate || b.Estate
	into.Overview = into.Overview || b.Overview
	into.All = into.All || b.All
	into.Faults = into.Faults || b.Faults
	into.Requests = into.Requests || b.Requests
	if b.Clock != nil {
		into.Clock = b.Clock
	}
	for _, id := range b.Clusters {
		into.Clusters = addID(into.Clusters, id, &into.All)
	}
	for _, id := range b.Backups {
		into.Backups = addID(into.Backups, id, &into.All)
	}
	for _, id := range b.Tenants {
		into.Tenants = addID(into.Tenants, id, &into.All)
	}
}

// errTooManyStreams refuses a stream beyond the cap.
type errTooManyStreams struct{ max int }

func (e errTooManyStreams) Error() string {
	return fmt.Sprintf("too many open console streams (%d, --console-streams): close some console tabs; this page will retry", e.max)
}

// serve takes the request's connection over for a live stream of events
// for which wants is true, until the browser goes or the console closes.
// The stream is not an HTTP response the server manages: the server's
// write timeout does not cut it, its connection leaves the listener's
// connection cap (--max-connections) for the console's own (max), and a
// server shutdown does not wait for it.
func (h *hub) serve(w http.ResponseWriter, r *http.Request, wants func(*Batch) bool) {
	h.mu.Lock()
	if len(h.streams) >= h.max {
		h.mu.Unlock()
		w.Header().Set("Retry-After", "10")
		http.Error(w, errTooManyStreams{h.max}.Error(), http.StatusServiceUnavailable)
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		h.mu.Unlock()
		http.Error(w, "live updates need an HTTP/1.1 connection: "+err.Error(), http.StatusInternalServerError)
		return
	}
	s := &stream{conn: conn, w: rw.Writer, wants: wants, notify: make(chan struct{}, 1)}
	h.streams[s] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.streams, s)
		h.mu.Unlock()
		conn.Close()
	}()
	if rel, ok := conn.(interface{ Release() }); ok {
		rel.Release() // counted by the console's cap from now on
	}
	_ = conn.SetDeadline(time.Time{})
	gone := make(chan struct{})
	go func() {
		// The browser sends nothing more; a read ends when it goes.
		_, _ = rw.Reader.WriteTo(discard{})
		close(gone)
	}()
	ck := h.clock()
	hi := Batch{Clock: &ck, Gen: h.gen.Load()}
	if h.requests != nil {
		hi.Reqs = h.requests.Version()
	}
	hello, _ := json.Marshal(hi)
	if s.write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\n\r\n"+
		"retry: 2000\n\nevent: hello\ndata: "+string(hello)+"\n\n") != nil {
		return
	}
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	var last time.Time
	var wait <-chan time.Time
	send := func() error {
		s.mu.Lock()
		b := s.next
		s.next = nil
		s.mu.Unlock()
		if b == nil {
			return nil
		}
		last = time.Now()
		data, _ := json.Marshal(b)
		return s.write("event: change\ndata: " + string(data) + "\n\n")
	}
	for {
		select {
		case <-gone:
			return
		case <-h.stop:
			return
		case <-beat.C:
			if s.write(": keep-alive\n\n") != nil {
				return
			}
		case <-s.notify:
			if wait != nil {
				continue // sent when the gap ends
			}
			if d := minGap - time.Since(last); d > 0 {
				wait = time.After(d)
				continue
			}
			if send() != nil {
				return
			}
		case <-wait:
			wait = nil
			if send() != nil {
				return
			}
		}
	}
}

func (s *stream) write(text string) error {
	_ = s.conn.SetWriteDeadline(time.Now().Add(writeLimit))
	if _, err := s.w.WriteString(text); err != nil {
		return err
	}
	return s.w.Flush()
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }
