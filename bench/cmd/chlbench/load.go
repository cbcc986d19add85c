package main

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"
)

// result is what a load run measured.
type result struct {
	n, errs  int
	firstErr error
	elapsed  time.Duration
	lat      []time.Duration // sorted
	// late holds, for open-loop requests whose connection was free when
	// they were due, how long after the due time the generator sent them:
	// its own timer and scheduling error, not the server's (sorted).
	late []time.Duration
	svc  []time.Duration
}

func (r *result) rps() float64 { return float64(r.n) / r.elapsed.Seconds() }

func (r *result) pct(p float64) time.Duration { return percentile(r.lat, p) }

// latePct returns the p-th percentile of the generator's own lateness.
func (r *result) latePct(p float64) time.Duration { return percentile(r.late, p) }

// svcPct returns the p-th percentile of the latencies that leave out the
// generator's lateness.
func (r *result) svcPct(p float64) time.Duration { return percentile(r.svc, p) }

// percentile returns the p-th percentile of sorted (0 if it is empty).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(int(p/100*float64(len(sorted))), len(sorted)-1)]
}

func (r *result) max() time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[len(r.lat)-1]
}

func (r *result) err() error {
	if r.errs == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d requests failed, first: %w", r.errs, r.n+r.errs, r.firstErr)
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
}

// merge combines per-worker results.
func merge(parts []*result, elapsed time.Duration) *result {
	out := &result{elapsed: elapsed}
	for _, p := range parts {
		out.n += p.n
		out.errs += p.errs
		if out.firstErr == nil {
			out.firstErr = p.firstErr
		}
		out.lat = append(out.lat, p.lat...)
		out.late = append(out.late, p.late...)
		out.svc = append(out.svc, p.svc...)
	}
	slices.Sort(out.lat)
	slices.Sort(out.late)
	slices.Sort(out.svc)
	return out
}

// closedLoop runs clients workers, each sending next(worker, i) back to back
// for dur (or until next returns nil), and measures each request.
func closedLoop(ctx context.Context, c *client, clients int, dur time.Duration, next func(worker, i int) *request) *result {
	parts := make([]*result, clients)
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range clients {
		parts[w] = &result{lat: make([]time.Duration, 0, 1024)}
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			p := parts[w]
			for i := 0; ctx.Err() == nil; i++ {
				t := time.Now()
				if !t.Before(deadline) {
					return
				}
				r := next(w, i)
				if r == nil {
					return
				}
				if err := c.send(ctx, r); err != nil {
					p.errs++
					if p.firstErr == nil {
						p.firstErr = err
					}
					continue
				}
				p.lat = append(p.lat, time.Since(t))
				p.n++
			}
		}(w)
	}
	wg.Wait()
	return merge(parts, time.Since(start))
}

// openLoop sends r at a fixed rate (requests per second) for dur over
// workers connections, whatever the answers' speed. As in wrk2, each worker
// owns a share of the schedule (every workers-th request) and sends each
// request when it is due, or at once if it is late; each latency is
// measured from the time the request was due, so queueing behind slow
// answers counts (no coordinated omission).
func openLoop(ctx context.Context, c *client, rate float64, dur time.Duration, workers int, r *request) *result {
	interval := time.Duration(float64(time.Second) / rate)
	total := int(dur / interval)
	parts := make([]*result, workers)
	// The generator's own garbage collector would pause the workers and
	// count as server latency: the loop allocates nothing, and GC is off
	// while it runs.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var wg sync.WaitGroup
	start := time.Now().Add(10 * time.Millisecond)
	for w := range workers {
		parts[w] = &result{lat: make([]time.Duration, 0, total/workers+16), late: make([]time.Duration, 0, total/workers+16), svc: make([]time.Duration, 0, total/workers+16)}
		wg.Add(1)
		go func(w int, p *result) {
			defer wg.Done()
			var free time.Time // when the previous answer arrived
			for i := w; i < total && ctx.Err() == nil; i += workers {
				due := start.Add(time.Duration(i) * interval)
				sleepUntil(due)
				sent := due
				if free.Before(due) {
					sent = time.Now()
					p.late = append(p.late, sent.Sub(due))
				}
				if err := c.send(ctx, r); err != nil {
					p.errs++
					if p.firstErr == nil {
						p.firstErr = err
					}
					continue
				}
				free = time.Now()
				p.lat = append(p.lat, free.Sub(due))
				p.svc = append(p.svc, free.Sub(sent))
				p.n++
			}
		}(w, parts[w])
	}
	wg.Wait()
	return merge(parts, time.Since(start))
}
