// Package gctune owns the garbage collector's pacing for the server binary:
// a floor under the heap goal, so that a server whose live heap is a few
// megabytes does not collect dozens of times a second under load.
//
// The Go runtime's smallest heap goal is 4 MB. A server answering 20,000
// requests a second allocates that in a few dozen milliseconds, and every
// cycle takes part of a core and delays requests. With a floor of F bytes
// the goal is max(F, 2 x live): for a small heap the collector runs when F
// bytes are in use; for a heap above F/2 (100,000 clusters, say) the
// runtime's default pacing is unchanged.
//
// A heap allowed to grow to the floor keeps that memory after a burst of
// requests; once the process has been idle for a second, the tuner hands
// free memory back to the system, so an idle server stays small.
//
// GC settings are process-wide: only a program's main package should call
// Floor, never a library that may share its process with others.
package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// runtimeHeapMinimum is the Go runtime's smallest heap goal at GOGC=100;
// the runtime scales it with GOGC (the GC guide: "a heap minimum of
// 4 MiB, scaled by GOGC").
const runtimeHeapMinimum = 4 << 20

// idleAllocs is how little a process may allocate in a second and still
// count as idle.
const idleAllocs = 256 << 10

// Tuner keeps the heap goal at or above its floor. Stop ends it.
type Tuner struct {
	floor uint64
	// mu orders adjustments (run after each collection) and Stop.
	mu      sync.Mutex
	stopped bool
	sample  []metrics.Sample
	percent atomic.Int64 // the GOGC value last set (for tests and logs)
	// released counts the times idle memory was handed back (for tests).
	released atomic.Int64
	stop     chan struct{}
	done     chan struct{}
}

// Floor starts tuning for a heap goal of at least floor bytes and returns
// the tuner, or nil when it does nothing: floor is 0, or the user set GOGC
// or GOMEMLIMIT (their choice stands).
func Floor(floor uint64) *Tuner {
	if floor == 0 || os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return nil
	}
	t := &Tuner{floor: floor, sample: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}}
	t.percent.Store(100)
	t.adjust()
	t.arm()
	t.stop, t.done = make(chan struct{}), make(chan struct{})
	go t.releaseWhenIdle(time.Second)
	return t
}

// releaseWhenIdle calls idleTick every tick until Stop.
func (t *Tuner) releaseWhenIdle(tick time.Duration) {
	defer close(t.done)
	st := t.newIdleState()
	tk := time.NewTicker(tick)
	defer tk.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tk.C:
			t.idleTick(&st)
		}
	}
}

// idleState is what idleTick remembers between ticks.
type idleState struct {
	allocs   []metrics.Sample
	last     uint64 // bytes allocated so far, at the last tick
	released bool   // memory was handed back in this idle spell
}

func (t *Tuner) newIdleState() idleState {
	st := idleState{allocs: []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}, released: true}
	metrics.Read(st.allocs)
	st.last = st.allocs[0].Value.Uint64()
	return st
}

// idleTick returns free heap memory to the system once per idle spell:
// at the first tick after which the process allocated next to nothing.
func (t *Tuner) idleTick(st *idleState) {
	metrics.Read(st.allocs)
	now := st.allocs[0].Value.Uint64()
	busy := now-st.last >= idleAllocs
	st.last = now
	switch {
	case busy:
		st.released = false
	case !st.released:
		debug.FreeOSMemory()
		t.released.Add(1)
		st.released = true
		metrics.Read(st.allocs) // FreeOSMemory's own allocations are not load
		st.last = st.allocs[0].Value.Uint64()
	}
}

// arm asks to be called back after the next collection: a fresh object
// becomes unreachable at once, and its cleanup runs after the cycle that
// finds it.
func (t *Tuner) arm() {
	// The marker holds a pointer so that it is not packed with other tiny
	// objects, which would delay its cleanup.
	p := &cycleMarker{}
	runtime.AddCleanup(p, func(t *Tuner) {
		if t.adjust() {
			t.arm()
		}
	}, t)
}

type cycleMarker struct{ _ *byte }

// adjust sets GOGC so that the next heap goal is the floor when the live
// heap is under half of it, and the runtime's default otherwise. The
// runtime's goal is the larger of live + (live + stacks + globals) x
// GOGC/100 and its heap minimum, 4 MB x GOGC/100: GOGC is the largest value
// that keeps both at or under the floor. It returns false once stopped.
func (t *Tuner) adjust() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	metrics.Read(t.sample)
	live := t.sample[0].Value.Uint64()
	roots := live + t.sample[1].Value.Uint64() + t.sample[2].Value.Uint64()
	percent := int64(100)
	if 2*live < t.floor && roots > 0 {
		byMinimum := t.floor * 100 / runtimeHeapMinimum
		byGrowth := (t.floor - live) * 100 / roots
		percent = max(int64(min(byMinimum, byGrowth)), 100)
	}
	// Small changes are not worth a call (each one re-paces the cycle).
	if old := t.percent.Load(); percent*10 < old*9 || percent*10 > old*11 {
		debug.SetGCPercent(int(percent))
		t.percent.Store(percent)
	}
	return true
}

// Percent returns the GOGC value the tuner set last.
func (t *Tuner) Percent() int { return int(t.percent.Load()) }

// Stop ends the tuning and restores GOGC=100.
func (t *Tuner) Stop() {
	if t == nil {
		return
	}
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	t.stopped = true
	debug.SetGCPercent(100)
	t.mu.Unlock()
	close(t.stop)
	<-t.done
}

// Loading turns the collector off while a program loads its state, until
// the returned function is called. Loading allocates mostly what stays
// live, so collecting while the heap grows is wasted work: a quarter of
// the time to read 100,000 clusters. The price is the loading garbage,
// held until done (about 60 MB at 100,000 clusters). limit bounds the
// heap meanwhile: the runtime collects when it reaches limit bytes, as
// under GOMEMLIMIT, and keeps collecting often if the live data alone
// exceeds it. It does nothing when the user set GOGC or GOMEMLIMIT.
func Loading(limit int64) (done func()) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" || limit <= 0 {
		return func() {}
	}
	oldLimit := debug.SetMemoryLimit(limit)
	oldPercent := debug.SetGCPercent(-1)
	return func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
	}
}
