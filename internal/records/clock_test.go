package records

import (
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
)

func TestClockRoundTrip(t *testing.T) {
	at := time.Date(2031, 5, 6, 7, 8, 9, 123e6, time.UTC)
	for _, st := range []clock.State{
		{},
		{Offset: 36 * time.Hour},
		{Offset: -90 * time.Minute},
		{Frozen: true, FrozenAt: at},
		{Offset: time.Second, Frozen: true, FrozenAt: at},
	} {
		b := Codec{}.EncodeClock(st)
		got, err := Codec{}.DecodeClock(b)
		if err != nil {
			t.Fatalf("%+v: %v", st, err)
		}
		if got.Offset != st.Offset || got.Frozen != st.Frozen || !got.FrozenAt.Equal(st.FrozenAt) {
			t.Errorf("round trip of %+v gave %+v", st, got)
		}
		for n := range len(b) {
			if _, err := (Codec{}).DecodeClock(b[:n]); err == nil {
				t.Errorf("%+v truncated to %d bytes decoded", st, n)
			}
		}
	}
}
