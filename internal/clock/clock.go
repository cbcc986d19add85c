// Package clock owns the notion of "now" for a cloudhsm-local server. Every
// timed behaviour (state transitions, scheduled backups, retention, expiry)
// reads time from a Clock, so tests and the admin API can advance, freeze and
// resume it instead of sleeping.
package clock

import (
	"sync"
	"sync/atomic"
	"time"
)

// Clock is a settable clock: real time plus an offset, optionally frozen.
// The zero value is not usable; create one with New or NewFrozen.
type Clock struct {
	mu       sync.Mutex
	real     func() time.Time
	offset   time.Duration
	frozen   bool
	frozenAt time.Time
	subs     []chan struct{}
	// gen counts the changes of offset and freezing (see State).
	gen atomic.Uint64
}

// State is what a clock keeps beside real time: its offset from it, or the
// time it is frozen at. An estate keeps it, so that its simulated time never
// goes back across a restart.
type State struct {
	Offset   time.Duration // added to real time while running
	Frozen   bool
	FrozenAt time.Time // the time shown while frozen
	// Generation counts the changes made to the clock (Advance, Freeze,
	// Resume, Restore) since it was made: a keeper compares it with the
	// generation it kept last to know whether there is anything to keep.
	Generation uint64
}

// New returns a clock that follows real time.
func New() *Clock { return &Clock{real: time.Now} }

// NewFrozen returns a clock frozen at t: it moves only when advanced.
func NewFrozen(t time.Time) *Clock {
	return &Clock{real: time.Now, frozen: true, frozenAt: t}
}

// Now returns the clock's current time, truncated to milliseconds as AWS
// timestamps are.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked()
}

func (c *Clock) nowLocked() time.Time {
	if c.frozen {
		return c.frozenAt
	}
	return c.real().Add(c.offset).Truncate(time.Millisecond)
}

// Advance moves the clock forward by d (negative values are ignored) and wakes
// every subscriber.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	if d > 0 {
		if c.frozen {
			c.frozenAt = c.frozenAt.Add(d)
		} else {
			c.offset += d
		}
		c.gen.Add(1)
	}
	now := c.nowLocked()
	c.notifyLocked()
	c.mu.Unlock()
	return now
}

// Freeze stops the clock at its current time.
func (c *Clock) Freeze() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen {
		c.frozenAt = c.nowLocked()
		c.frozen = true
		c.gen.Add(1)
	}
	return c.frozenAt
}

// Resume lets a frozen clock follow real time again from where it stood.
func (c *Clock) Resume() time.Time {
	c.mu.Lock()
	if c.frozen {
		c.offset = c.frozenAt.Sub(c.real())
		c.frozen = false
		c.gen.Add(1)
	}
	now := c.nowLocked()
	c.notifyLocked()
	c.mu.Unlock()
	return now
}

// UseReal makes the clock follow the real time that now tells from here on
// (a database's clock, shared by several processes), keeping its offset.
func (c *Clock) UseReal(now func() time.Time) {
	c.mu.Lock()
	c.real = now
	c.mu.Unlock()
}

// State returns the clock's offset or frozen time, and its generation.
func (c *Clock) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return State{Offset: c.offset, Frozen: c.frozen, FrozenAt: c.frozenAt, Generation: c.gen.Load()}
}

// Generation returns the number of changes made to the clock so far
// (see State), without taking its lock.
func (c *Clock) Generation() uint64 { return c.gen.Load() }

// Restore sets the clock's offset and freezing to st (its Generation is
// ignored) and wakes every subscriber. It counts as a change.
func (c *Clock) Restore(st State) {
	c.mu.Lock()
	c.offset, c.frozen, c.frozenAt = st.Offset, st.Frozen, st.FrozenAt
	c.gen.Add(1)
	c.notifyLocked()
	c.mu.Unlock()
}

// Frozen reports whether the clock is frozen.
func (c *Clock) Frozen() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frozen
}

// Subscribe returns a channel that receives a value (without blocking the
// clock) whenever the clock is advanced or resumed.
func (c *Clock) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	c.subs = append(c.subs, ch)
	c.mu.Unlock()
	return ch
}

func (c *Clock) notifyLocked() {
	for _, ch := range c.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
