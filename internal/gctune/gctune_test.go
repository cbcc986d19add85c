package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
)

var sink [][]byte

func heapGoal() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func TestFloorSetsTheHeapGoal(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	const floor = 64 << 20
	tu := Floor(floor)
	if tu == nil {
		t.Fatal("Floor returned nil without GOGC set")
	}
	defer tu.Stop()
	runtime.GC()
	runtime.GC() // the cleanup of the first cycle has run by the second
	// The test binary's live heap is a few MB: far under half the floor,
	// so the goal is the floor, give or take the live heap's rounding.
	if g := heapGoal(); g < floor*9/10 || g > floor*11/10 {
		t.Errorf("heap goal %d MB under a 64 MB floor (GOGC %d)", g>>20, tu.Percent())
	}
	if p := debug.SetGCPercent(tu.Percent()); p != tu.Percent() {
		t.Errorf("runtime GOGC %d, tuner says %d", p, tu.Percent())
	}

	// A live heap above half the floor brings the default pacing back.
	tu.Stop()
	tu = Floor(8 << 20)
	for range 12 {
		sink = append(sink, make([]byte, 1<<20))
	}
	runtime.GC()
	runtime.GC()
	if p := tu.Percent(); p != 100 {
		t.Errorf("GOGC %d with 12 MB live under an 8 MB floor, want 100", p)
	}
	sink = nil
	tu.Stop()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GOGC %d after Stop, want 100", p)
	}
}

func TestFloorRespectsGOGC(t *testing.T) {
	t.Setenv("GOGC", "200")
	if tu := Floor(64 << 20); tu != nil {
		tu.Stop()
		t.Error("Floor tuned although GOGC is set")
	}
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "1GiB")
	if tu := Floor(64 << 20); tu != nil {
		tu.Stop()
		t.Error("Floor tuned although GOMEMLIMIT is set")
	}
	if tu := Floor(0); tu != nil {
		t.Error("Floor(0) tuned")
	}
}

func TestIdleMemoryIsReleased(t *testing.T) {
	var tu Tuner // only idleTick is exercised: no goroutine, no real ticks
	st := tu.newIdleState()
	tu.idleTick(&st)
	if n := tu.released.Load(); n != 0 {
		t.Fatalf("released %d times before any load", n)
	}
	// A burst of garbage: the tick that sees it is busy.
	for range 64 {
		sink = append(sink[:0], make([]byte, 1<<20))
	}
	sink = nil
	tu.idleTick(&st)
	if n := tu.released.Load(); n != 0 {
		t.Fatalf("released %d times while busy", n)
	}
	// The next ticks are idle: memory is handed back at the first, once.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	tu.idleTick(&st)
	runtime.ReadMemStats(&after)
	if n := tu.released.Load(); n != 1 {
		t.Fatalf("released %d times after the first idle tick, want 1", n)
	}
	if after.HeapReleased <= before.HeapReleased {
		t.Errorf("HeapReleased %d -> %d: nothing handed back", before.HeapReleased, after.HeapReleased)
	}
	tu.idleTick(&st)
	tu.idleTick(&st)
	if n := tu.released.Load(); n != 1 {
		t.Errorf("released %d times in one idle spell, want 1", n)
	}
}

func TestLoading(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	done := Loading(1 << 30)
	if p := debug.SetGCPercent(-1); p != -1 {
		t.Errorf("GOGC %d while loading, want off (-1)", p)
	}
	if l := debug.SetMemoryLimit(-1); l != 1<<30 {
		t.Errorf("memory limit %d while loading, want 1 GB", l)
	}
	done()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GOGC %d after loading, want 100", p)
	}
	t.Setenv("GOGC", "50")
	Loading(1 << 30)()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("Loading changed GOGC although the user set it: %d", p)
	}
}
