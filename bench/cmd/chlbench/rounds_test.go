package main

import (
	"errors"
	"testing"
	"time"
)

func TestRunRounds(t *testing.T) {
	// Each kind's run returns a result whose single latency is its
	// sequence number; the meter replays a fixed list of steal figures.
	cases := []struct {
		name        string
		want, max   int
		kinds       int
		steals      []float64 // one per round, in the order run
		wantRounds  int       // rounds of each kind
		wantQuiet   []int     // quiet rounds of each kind
		wantQuietMs []float64 // latencies (ms) of kind 0's quiet rounds
	}{
		{"quiet machine: exactly want passes", 3, 9, 2,
			[]float64{0, 0, 0, 0, 0, 0}, 3, []int{3, 3}, []float64{1, 3, 5}},
		{"noisy rounds are run again", 2, 9, 1,
			[]float64{5, 0, 30, 0.5}, 4, []int{2}, []float64{2, 4}},
		{"both kinds need their quiet rounds", 1, 9, 2,
			[]float64{0, 7, 0, 0}, 2, []int{2, 1}, []float64{1, 3}},
		{"gives up after max passes", 2, 3, 1,
			[]float64{9, 9, 0}, 3, []int{1}, []float64{3}},
		{"unknown steal counts as quiet", 2, 5, 1,
			[]float64{-1, -1}, 2, []int{2}, []float64{1, 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, i := 0, 0
			meter := func() func() float64 {
				s := tc.steals[i]
				i++
				return func() float64 { return s }
			}
			run := func() (*result, error) {
				n++
				return &result{n: 1, lat: []time.Duration{time.Duration(n) * time.Millisecond}}, nil
			}
			kinds := make([]func() (*result, error), tc.kinds)
			for k := range kinds {
				kinds[k] = run
			}
			got, err := runRoundsMetered(tc.want, tc.max, 1, meter, kinds...)
			if err != nil {
				t.Fatal(err)
			}
			if i != len(tc.steals) {
				t.Errorf("ran %d rounds, want %d", i, len(tc.steals))
			}
			for k, s := range got {
				if len(s) != tc.wantRounds {
					t.Errorf("kind %d: %d rounds, want %d", k, len(s), tc.wantRounds)
				}
				if q := len(s.quietResults(1)); q != tc.wantQuiet[k] {
					t.Errorf("kind %d: %d quiet rounds, want %d", k, q, tc.wantQuiet[k])
				}
			}
			var ms []float64
			for _, r := range got[0].quietResults(1) {
				ms = append(ms, float64(r.lat[0])/float64(time.Millisecond))
			}
			if len(ms) != len(tc.wantQuietMs) {
				t.Fatalf("quiet latencies %v, want %v", ms, tc.wantQuietMs)
			}
			for j := range ms {
				if ms[j] != tc.wantQuietMs[j] {
					t.Fatalf("quiet latencies %v, want %v", ms, tc.wantQuietMs)
				}
			}
		})
	}
	t.Run("an error stops the rounds", func(t *testing.T) {
		boom := errors.New("boom")
		calls := 0
		_, err := runRoundsMetered(3, 9, 1, func() func() float64 { return func() float64 { return 0 } },
			func() (*result, error) { calls++; return nil, boom })
		if !errors.Is(err, boom) || calls != 1 {
			t.Fatalf("err %v after %d calls, want boom after 1", err, calls)
		}
	})
}

func TestP99Median(t *testing.T) {
	if _, ok := p99Median(nil); ok {
		t.Fatal("median of no rounds reported")
	}
	rs := []*result{{lat: []time.Duration{3}}, {lat: []time.Duration{1}}, {lat: []time.Duration{2}}}
	if d, ok := p99Median(rs); !ok || d != 2 {
		t.Fatalf("p99Median = %v, %v; want 2, true", d, ok)
	}
}
