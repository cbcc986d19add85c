package cloudhsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// A cluster's history is kept packed in a string, the same bytes in memory
// and in its record: a version byte (1), then per transition the index
// (+1, 0 for "") of From and To in ClusterStates, the cause as its index
// (+1) in KnownCauses or 0 and a length-prefixed string, and the time as a
// signed varint of nanoseconds after the previous transition's (after the
// Unix epoch for the first).

const historyVersion = 1

// History returns the cluster's latest state transitions, oldest first, at
// most MaxHistory of them.
func (c *Cluster) History() []Transition {
	h, _ := decodeHistory(c.history)
	return h
}

// SetHistory sets the cluster's history (an import): the last MaxHistory
// of h. Every From and To must be a cluster state (From may be "").
func (c *Cluster) SetHistory(h []Transition) error {
	if n := len(h) - MaxHistory; n > 0 {
		h = h[n:]
	}
	packed, err := encodeHistory(h)
	if err != nil {
		return err
	}
	c.history = packed
	return nil
}

// PackedHistory returns the history as packed bytes, for a record.
func (c *Cluster) PackedHistory() string { return c.history }

// SetPackedHistory sets the history from what PackedHistory returned (a
// record read back), after checking it.
func (c *Cluster) SetPackedHistory(p string) error {
	if err := walkHistory(p, nil); err != nil {
		return err
	}
	c.history = p
	return nil
}

// addHistory appends one transition, dropping the oldest beyond MaxHistory.
func (c *Cluster) addHistory(from, to string, at time.Time, cause string) {
	h := append(c.History(), Transition{From: from, To: to, At: at, Cause: cause})
	if err := c.SetHistory(h); err != nil {
		// The states are the cluster's own: never.
		panic(fmt.Sprintf("cloudhsm: history of %s: %v", c.ID, err))
	}
}

func stateIndex(s string) (uint64, bool) {
	if s == "" {
		return 0, true
	}
	for i, st := range ClusterStates {
		if st == s {
			return uint64(i + 1), true
		}
	}
	return 0, false
}

func encodeHistory(h []Transition) (string, error) {
	if len(h) == 0 {
		return "", nil
	}
	b := []byte{historyVersion}
	var prev int64
	for i, t := range h {
		from, ok1 := stateIndex(t.From)
		to, ok2 := stateIndex(t.To)
		if !ok1 || !ok2 || t.To == "" {
			return "", fmt.Errorf("history[%d]: %q -> %q is not a change between cluster states", i, t.From, t.To)
		}
		b = binary.AppendUvarint(b, from)
		b = binary.AppendUvarint(b, to)
		cause := uint64(0)
		for k, known := range KnownCauses {
			if known == t.Cause {
				cause = uint64(k + 1)
			}
		}
		b = binary.AppendUvarint(b, cause)
		if cause == 0 {
			b = binary.AppendUvarint(b, uint64(len(t.Cause)))
			b = append(b, t.Cause...)
		}
		at := t.At.UnixNano()
		b = binary.AppendVarint(b, at-prev)
		prev = at
	}
	return string(b), nil
}

var errHistory = errors.New("damaged history")

func decodeHistory(p string) ([]Transition, error) {
	var out []Transition
	err := walkHistory(p, func(t Transition) { out = append(out, t) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// walkHistory checks packed history p and hands each transition to fn
// (nil: only check, allocating nothing: a start reads 100,000 of them).
func walkHistory(p string, fn func(Transition)) error {
	if p == "" {
		return nil
	}
	if p[0] != historyVersion {
		return fmt.Errorf("%w: version %d", errHistory, p[0])
	}
	i := 1
	uvarint := func() (uint64, bool) {
		var v uint64
		for shift := uint(0); i < len(p) && shift < 64; shift += 7 {
			b := p[i]
			i++
			v |= uint64(b&0x7f) << shift
			if b < 0x80 {
				return v, true
			}
		}
		return 0, false
	}
	var prev int64
	for i < len(p) {
		from, ok1 := uvarint()
		to, ok2 := uvarint()
		cause, ok3 := uvarint()
		if !ok1 || !ok2 || !ok3 || from > uint64(len(ClusterStates)) || to == 0 || to > uint64(len(ClusterStates)) || cause > uint64(len(KnownCauses)) {
			return errHistory
		}
		var causeText string
		if cause > 0 {
			causeText = KnownCauses[cause-1]
		} else {
			n, ok := uvarint()
			if !ok || n > uint64(len(p)-i) {
				return errHistory
			}
			causeText = p[i : i+int(n)]
			i += int(n)
		}
		zz, ok := uvarint()
		if !ok {
			return errHistory
		}
		prev += int64(zz>>1) ^ -int64(zz&1) // a signed varint, as binary.AppendVarint writes it
		if fn != nil {
			t := Transition{To: ClusterStates[to-1], Cause: causeText, At: time.Unix(0, prev).UTC()}
			if from > 0 {
				t.From = ClusterStates[from-1]
			}
			fn(t)
		}
	}
	return nil
}
