package main

import (
	"time"
)

// round is one open-loop round and the share of CPU time the hypervisor
// stole while it ran.
type round struct {
	r     *result
	steal float64 // percent; -1 if unknown
}

// series is the rounds of one kind (ours, the floor's; reads alone, reads
// during CreateHsm).
type series []round

// quiet reports whether a round ran while the machine was quiet: steal
// under limit percent. Without /proc/stat every round counts as quiet.
func (r round) quiet(limit float64) bool { return r.steal < limit }

func (s series) results() []*result {
	out := make([]*result, len(s))
	for i, r := range s {
		out[i] = r.r
	}
	return out
}

func (s series) quietResults(limit float64) []*result {
	var out []*result
	for _, r := range s {
		if r.quiet(limit) {
			out = append(out, r.r)
		}
	}
	return out
}

func (s series) steals() []float64 {
	out := make([]float64, len(s))
	for i, r := range s {
		out[i] = r.steal
	}
	return out
}

// p99 returns the median of the rounds' p99, and false if there are none.
func p99Median(rs []*result) (time.Duration, bool) {
	if len(rs) == 0 {
		return 0, false
	}
	return median(roundP99s(rs)), true
}

// runRounds runs the kinds of round in turn (one round of each per pass),
// each measured with the steal meter, until every kind has want quiet
// rounds or maxPasses passes have run; it runs at least want passes. A
// kind's run returning an error stops everything.
//
// On this shared virtual machine a few seconds of steal multiply a p99 by
// ten or more, for the floor server as for ours; taking turns gives the
// kinds the same moments of the machine, and the quiet rounds say what the
// servers do when the host leaves the CPUs to this VM.
func runRounds(want, maxPasses int, limit float64, kinds ...func() (*result, error)) ([]series, error) {
	return runRoundsMetered(want, maxPasses, limit, func() func() float64 { return startSteal().pct }, kinds...)
}

// runRoundsMetered is runRounds with the steal meter given: meter starts a
// measurement and returns the function that ends it.
func runRoundsMetered(want, maxPasses int, limit float64, meter func() func() float64, kinds ...func() (*result, error)) ([]series, error) {
	out := make([]series, len(kinds))
	for pass := 0; pass < max(maxPasses, want); pass++ {
		if pass >= want {
			enough := true
			for _, s := range out {
				if len(s.quietResults(limit)) < want {
					enough = false
				}
			}
			if enough {
				break
			}
		}
		for k, run := range kinds {
			stop := meter()
			r, err := run()
			if err != nil {
				return nil, err
			}
			out[k] = append(out[k], round{r: r, steal: stop()})
		}
	}
	return out, nil
}
