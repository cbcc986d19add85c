package bench

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store/postgres"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit/pgtest"
)

// TestMain stops the private PostgreSQL of the Postgres benchmarks.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// clusterValue is the size of a cluster record.
var clusterValue = []byte(strings.Repeat("x", 1100))

func clusterKey() string {
	var r [7]byte
	_, _ = rand.Read(r[:])
	return "555555555555/us-east-1/cluster-" + strings.ToLower(base32.StdEncoding.EncodeToString(r[:]))[:11]
}

// openPostgres opens n stores (n processes' worth) on a new database of
// the benchmark binary's private PostgreSQL.
func openPostgres(b *testing.B, n int) []*postgres.Store {
	b.Helper()
	url := pgtest.Shared(b).NewDatabase(b)
	var out []*postgres.Store
	for range n {
		s, err := postgres.Open(context.Background(), url, postgres.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		out = append(out, s)
	}
	return out
}

// discard is a View that keeps nothing.
type discard struct{ n int }

func (d *discard) Reset()                             {}
func (d *discard) Apply(string, string, []byte) error { d.n++; return nil }

// BenchmarkPostgresExclusive: 32 committers spread over two stores (two
// replicas' worth), each calling Exclusive in a loop with a group of
// `records` cluster-sized records under new keys; each committer's view
// takes the others' changes (the delta) on every call, as a replica's
// does. Every commit is durable (fsync on) and serialized on the estate's
// lock: commits/s is the rate of the lock's cycle, records/s what a
// domain that groups its writes into one Exclusive gets out of it.
func BenchmarkPostgresExclusive(b *testing.B) {
	for _, records := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("records=%d", records), func(b *testing.B) {
			stores := openPostgres(b, 2)
			work := make(chan struct{}, b.N)
			for range b.N {
				work <- struct{}{}
			}
			close(work)
			var wg sync.WaitGroup
			var pulled atomic.Int64
			b.ResetTimer()
			for w := range 32 {
				wg.Go(func() {
					s := stores[w%len(stores)]
					v := &discard{}
					var since uint64
					for range work {
						muts := make([]store.Mutation, records)
						for i := range muts {
							muts[i] = store.Mutation{Kind: "cluster", Key: clusterKey(), Value: clusterValue}
						}
						sy, err := s.Exclusive(context.Background(), since, v, func(time.Time) ([]store.Mutation, error) { return muts, nil })
						if err != nil {
							b.Error(err)
							return
						}
						since = sy.Version
					}
					pulled.Add(int64(v.n))
				})
			}
			wg.Wait()
			b.StopTimer()
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N)/sec, "commits/s")
			b.ReportMetric(float64(b.N*records)/sec, "records/s")
			b.ReportMetric(float64(pulled.Load())/float64(b.N), "pulled/commit")
		})
	}
}

// BenchmarkPostgresExclusiveGrouped: 32 clients over two stores (16 per
// replica), each writing one cluster-sized record and waiting for it to
// be durable, as CreateCluster does; each replica groups what its clients
// queued meanwhile into one Exclusive (one view per replica, one
// Exclusive at a time), the way a domain with group commit would. It
// measures the records/s that the estate's lock cycle allows a domain
// that groups its writes.
func BenchmarkPostgresExclusiveGrouped(b *testing.B) {
	stores := openPostgres(b, 2)
	type req struct{ done chan error }
	queues := []chan req{make(chan req, 64), make(chan req, 64)}
	stop := make(chan struct{})
	var commits atomic.Int64
	var loops sync.WaitGroup
	for i, s := range stores {
		loops.Go(func() {
			v := &discard{}
			var since uint64
			for {
				var batch []req
				select {
				case r := <-queues[i]:
					batch = append(batch, r)
				case <-stop:
					return
				}
			more:
				for {
					select {
					case r := <-queues[i]:
						batch = append(batch, r)
					default:
						break more
					}
				}
				muts := make([]store.Mutation, len(batch))
				for j := range muts {
					muts[j] = store.Mutation{Kind: "cluster", Key: clusterKey(), Value: clusterValue}
				}
				sy, err := s.Exclusive(context.Background(), since, v, func(time.Time) ([]store.Mutation, error) { return muts, nil })
				if err == nil {
					since = sy.Version
				}
				commits.Add(1)
				for _, r := range batch {
					r.done <- err
				}
			}
		})
	}
	work := make(chan struct{}, b.N)
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := range 32 {
		wg.Go(func() {
			done := make(chan error, 1)
			for range work {
				queues[w%2] <- req{done}
				if err := <-done; err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(stop)
	loops.Wait()
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/sec, "records/s")
	b.ReportMetric(float64(commits.Load())/sec, "commits/s")
	b.ReportMetric(float64(b.N)/float64(commits.Load()), "records/commit")
}

// BenchmarkPostgresSubmit is BenchmarkBoltGroupCommit on PostgreSQL: 32
// writers submit one cluster-sized record each and wait; the store groups
// what is queued into one commit.
func BenchmarkPostgresSubmit(b *testing.B) {
	st := openPostgres(b, 1)[0]
	work := make(chan struct{}, b.N)
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	var wg sync.WaitGroup
	b.ResetTimer()
	for range 32 {
		wg.Go(func() {
			for range work {
				if err := st.Submit([]store.Mutation{{Kind: "cluster", Key: clusterKey(), Value: clusterValue}})(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}

// BenchmarkPostgresRefreshIdle: one Refresh of an up-to-date view, the
// cost a replica pays before it serves a read (nothing changed).
func BenchmarkPostgresRefreshIdle(b *testing.B) {
	st := openPostgres(b, 1)[0]
	ctx := context.Background()
	if err := st.Submit([]store.Mutation{{Kind: "cluster", Key: clusterKey(), Value: clusterValue}})(); err != nil {
		b.Fatal(err)
	}
	v := &discard{}
	sy, err := st.Refresh(ctx, 0, v)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := st.Refresh(ctx, sy.Version, v); err != nil {
			b.Fatal(err)
		}
	}
}

// generated is a store.Store whose Load makes n cluster records: the
// source that seeds a database through postgres.Copy.
type generated struct{ n int }

func (g generated) Load(fn func(kind, key string, value []byte) error) error {
	for i := range g.n {
		if err := fn("cluster", fmt.Sprintf("555555555555/us-east-1/cluster-%011d", i), clusterValue); err != nil {
			return err
		}
	}
	return nil
}
func (generated) Submit([]store.Mutation) func() error { return func() error { return nil } }
func (generated) Close() error                         { return nil }

// keep is a View that keeps every record, as a replica's estate does.
type keep map[string][]byte

func (k keep) Reset() { clear(k) }
func (k keep) Apply(kind, key string, value []byte) error {
	k[kind+"/"+key] = value
	return nil
}

// BenchmarkPostgresLoad100k: a replica's first Refresh (from 0) of an
// estate of 100,000 cluster-sized records, into a view that keeps them,
// and Load of the same into a callback that drops them. heap-B/record is
// what the kept view holds per record after a collection (the value
// itself is 1,100 B of it); alloc-B/record everything allocated.
func BenchmarkPostgresLoad100k(b *testing.B) {
	const n = 100_000
	st := openPostgres(b, 1)[0]
	start := time.Now()
	if _, err := postgres.Copy(context.Background(), generated{n}, st); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d records in %v", n, time.Since(start))
	b.Run("refresh", func(b *testing.B) {
		for range b.N {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			v := keep{}
			if _, err := st.Refresh(context.Background(), 0, v); err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			if len(v) != n {
				b.Fatalf("%d records", len(v))
			}
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/record")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/n, "alloc-B/record")
			runtime.KeepAlive(v)
		}
		b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/refresh")
	})
	b.Run("load", func(b *testing.B) {
		for range b.N {
			got := 0
			if err := st.Load(func(string, string, []byte) error { got++; return nil }); err != nil {
				b.Fatal(err)
			}
			if got != n {
				b.Fatalf("%d records", got)
			}
		}
		b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/load")
	})
}
