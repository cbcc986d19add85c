package records

import (
	"fmt"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
)

// formatClock1 starts the record of a kept clock: its offset from real time
// (a signed varint of nanoseconds), whether it is frozen, and the time it
// is frozen at.
const formatClock1 byte = 0xD1

// EncodeClock implements cloudhsm.Codec.
func (Codec) EncodeClock(st clock.State) []byte {
	e := encoder{b: []byte{formatClock1}}
	e.int(int64(st.Offset))
	e.bool(st.Frozen)
	e.time(st.FrozenAt)
	return e.b
}

// DecodeClock implements cloudhsm.Codec.
func (Codec) DecodeClock(b []byte) (clock.State, error) {
	if len(b) == 0 || b[0] != formatClock1 {
		return clock.State{}, fmt.Errorf("clock record: unknown format")
	}
	d := newDecoder(b[1:])
	var st clock.State
	st.Offset = time.Duration(d.int())
	st.Frozen = d.bool()
	st.FrozenAt = d.time()
	if d.err != nil {
		return clock.State{}, fmt.Errorf("clock record: %w", d.err)
	}
	if len(d.b) != 0 {
		return clock.State{}, fmt.Errorf("clock record: %d bytes left over", len(d.b))
	}
	return st, nil
}
