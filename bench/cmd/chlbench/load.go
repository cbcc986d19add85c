package main

import (
	"context"
	"fmt"
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
}

func (r *result) rps() float64 { return float64(r.n) / r.elapsed.Seconds() }

func (r *result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(p / 100 * float64(len(r.lat)))
	if i >= len(r.lat) {
		i = len(r.lat) - 1
	}
	return r.lat[i]
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
	}
	slices.Sort(out.lat)
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

// openLoop sends r at a fixed rate (requests per second) for dur, from a
// pool of workers, whatever the answers' speed. Each latency is measured
// from the time the request was due, not from when a worker picked it up,
// so queueing behind slow answers counts (no coordinated omission).
func openLoop(ctx context.Context, c *client, rate float64, dur time.Duration, workers int, r *request) *result {
	interval := time.Duration(float64(time.Second) / rate)
	total := int(dur / interval)
	due := make(chan time.Time, total+1)
	parts := make([]*result, workers)
	var wg sync.WaitGroup
	for w := range workers {
		parts[w] = &result{lat: make([]time.Duration, 0, total/workers+16)}
		wg.Add(1)
		go func(p *result) {
			defer wg.Done()
			for t := range due {
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
		}(parts[w])
	}
	// The dispatcher hands out every request that is due, then sleeps; a
	// late wake-up (the OS timer's granularity) counts in the latencies.
	start := time.Now()
	for i := 0; i < total && ctx.Err() == nil; {
		now := time.Now()
		for ; i < total && !start.Add(time.Duration(i)*interval).After(now); i++ {
			due <- start.Add(time.Duration(i) * interval)
		}
		if i < total {
			time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		}
	}
	close(due)
	wg.Wait()
	return merge(parts, time.Since(start))
}
