package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
	"github.com/cloudhsm-local/cloudhsm-local/internal/pki"
	"github.com/cloudhsm-local/cloudhsm-local/internal/records"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// BenchmarkStartInProcess measures starting (and closing) an in-process
// server of the public package, as a Go test that wants a fresh server per
// test does. Target: well under a millisecond per server.
func BenchmarkStartInProcess(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		s, err := cloudhsmlocal.New()
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkNewInProcess measures cloudhsmlocal.New alone; the servers are
// closed outside the timer.
func BenchmarkNewInProcess(b *testing.B) {
	b.ReportAllocs()
	var open []*cloudhsmlocal.Server
	for b.Loop() {
		s, err := cloudhsmlocal.New()
		if err != nil {
			b.Fatal(err)
		}
		open = append(open, s)
		if len(open) == 64 {
			b.StopTimer()
			for _, s := range open {
				s.Close()
			}
			open = open[:0]
			b.StartTimer()
		}
	}
	b.StopTimer()
	for _, s := range open {
		s.Close()
	}
}

const account = "555555555555"

func post(c *http.Client, url, op string, body []byte) (*http.Response, error) {
	req, err := newAPIRequest(url, op, body)
	if err != nil {
		return nil, err
	}
	return c.Do(req)
}

// newAPIRequest returns a request for op with the headers of
// shared/bench/describe.lua.
func newAPIRequest(url, op string, body []byte) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, url+"/", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header["Content-Type"] = []string{"application/x-amz-json-1.1"}
	req.Header["X-Amz-Target"] = []string{"BaldrApiService." + op}
	req.Header["X-Amz-Date"] = []string{"20261126T000000Z"}
	req.Header["Authorization"] = []string{"AWS4-HMAC-SHA256 Credential=" + account + "/20261126/us-east-1/cloudhsm/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0000000000000000000000000000000000000000000000000000000000000000"}
	return req, nil
}

// postOK posts op and discards the answer; it reports a failed call or a
// status other than 200 as an error of b and returns false.
func postOK(b *testing.B, c *http.Client, url, op string, body []byte) bool {
	resp, err := post(c, url, op, body)
	if err != nil {
		b.Error(err)
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Errorf("%s: HTTP %d", op, resp.StatusCode)
		return false
	}
	return true
}

// seededServer starts an in-process server with opts, closed when b ends,
// holding the 25 clusters of seed25, and a keep-alive client for it.
func seededServer(b *testing.B, opts ...cloudhsmlocal.Option) (*cloudhsmlocal.Server, *http.Client) {
	b.Helper()
	s, err := cloudhsmlocal.New(opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	seed25(b, c, s.URL)
	return s, c
}

// seed25 creates 25 clusters as shared/bench/seed.py does (two new
// subnets and one tag each).
func seed25(tb testing.TB, c *http.Client, url string) {
	tb.Helper()
	for i := range 25 {
		body, _ := json.Marshal(map[string]any{
			"HsmType":   "hsm2m.medium",
			"SubnetIds": []string{fmt.Sprintf("subnet-%08x%09x", i, 0), fmt.Sprintf("subnet-%08x%09x", i, 1)},
			"TagList":   []map[string]string{{"Key": "bench", "Value": fmt.Sprint(i)}},
		})
		resp, err := post(c, url, "CreateCluster", body)
		if err != nil {
			tb.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			tb.Fatalf("CreateCluster: %d %s", resp.StatusCode, b)
		}
	}
}

// BenchmarkDescribeClusters drives the read path of an in-process server
// over HTTP: DescribeClusters of a 25-cluster page, from parallel clients
// with keep-alive connections. Profile it with
//
//	go test -run '^$' -bench DescribeClusters -cpuprofile cpu.out ./bench/
//
// log=info mirrors the binary's default (one JSON log line per request,
// written here to io.Discard); log=off is the package's default.
func BenchmarkDescribeClusters(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts []cloudhsmlocal.Option
	}{
		{"log=off", nil},
		{"log=info", []cloudhsmlocal.Option{cloudhsmlocal.WithLogger(slog.New(slog.NewJSONHandler(io.Discard, nil)))}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s, c := seededServer(b, tc.opts...)
			body := []byte(`{"MaxResults": 25}`)
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if !postOK(b, c, s.URL, "DescribeClusters", body) {
						return
					}
				}
			})
		})
	}
}

// BenchmarkDescribeClustersHandler measures the server's own share of a
// DescribeClusters call, without the HTTP connection: the handler (wire,
// authentication, check, decode, page, log line) runs on a prepared request
// and a response writer that discards. Its allocs/op are the server's
// per-request allocations beyond net/http's request parsing. It runs on
// every core, so contention between requests shows.
func BenchmarkDescribeClustersHandler(b *testing.B) {
	s, _ := seededServer(b, cloudhsmlocal.WithLogger(slog.New(slog.NewJSONHandler(io.Discard, nil))))
	body := []byte(`{"MaxResults": 25}`)
	h := s.Handler()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req, err := newAPIRequest(s.URL, "DescribeClusters", body)
		if err != nil {
			b.Error(err)
			return
		}
		r := bytes.NewReader(body)
		req.Body = io.NopCloser(r)
		w := &discardWriter{header: http.Header{}}
		for pb.Next() {
			r.Reset(body)
			clear(w.header)
			w.status = 0
			h.ServeHTTP(w, req)
			if w.status != http.StatusOK {
				b.Errorf("DescribeClusters: HTTP %d", w.status)
				return
			}
		}
	})
}

// discardWriter is an http.ResponseWriter that keeps only the status.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.header }
func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}

// BenchmarkOpenDataDir measures opening an existing data directory (set
// CHLBENCH_DATA_DIR, e.g. to the estate that `chlbench --estate DIR` seeded)
// the way the binary does at start-up: open the bbolt file, load every
// record, rebuild the in-memory state and the scheduler. Profile it with
//
//	CHLBENCH_DATA_DIR=/tmp/estate go test -run '^$' -bench OpenDataDir -benchtime 5x -cpuprofile open.out ./bench/
//
// With CHLBENCH_HEAPPROFILE=FILE it also writes the live heap of the opened
// server (after a GC) to FILE, for `go tool pprof -sample_index=inuse_space`.
func BenchmarkOpenDataDir(b *testing.B) {
	dir := os.Getenv("CHLBENCH_DATA_DIR")
	if dir == "" {
		b.Skip("set CHLBENCH_DATA_DIR to a data directory to open")
	}
	b.ReportAllocs()
	for b.Loop() {
		s, err := server.New(server.Config{DataDir: dir, Domain: cloudhsm.DefaultConfig()})
		if err != nil {
			b.Fatal(err)
		}
		if path := os.Getenv("CHLBENCH_HEAPPROFILE"); path != "" {
			// The live heap of an opened server: what each resource costs.
			b.StopTimer()
			runtime.GC()
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			if err := pprof.WriteHeapProfile(f); err != nil {
				b.Fatal(err)
			}
			f.Close()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.HeapAlloc), "heap-bytes")
			b.StartTimer()
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateCluster drives durable CreateCluster calls (embedded bbolt
// store in a temporary directory, real clock as in the binary, so each
// cluster's CREATE_IN_PROGRESS -> UNINITIALIZED transition is written too)
// from 32 parallel clients, all on the same two subnets. Profile with
//
//	go test -run '^$' -bench CreateCluster -benchtime 10000x -cpuprofile w.out -blockprofile wb.out ./bench/
func BenchmarkCreateCluster(b *testing.B) {
	s, err := cloudhsmlocal.New(cloudhsmlocal.WithDataDir(b.TempDir()), cloudhsmlocal.WithRealClock())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	body := []byte(`{"HsmType":"hsm2m.medium","SubnetIds":["subnet-0b0000000000000b1","subnet-0b0000000000000b2"],"TagList":[{"Key":"bench","Value":"1"}]}`)
	b.ReportAllocs()
	b.SetParallelism(16) // 32 clients on 2 CPUs
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !postOK(b, c, s.URL, "CreateCluster", body) {
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
}

// BenchmarkDescribeClustersDuringCreateHsm measures DescribeClusters (a
// 25-cluster page) while 4 clients create HSMs back to back, each needing
// fresh RSA keys. It reports the readers' p99 in read-p99-ms. Profile where
// readers wait with
//
//	go test -run '^$' -bench DuringCreateHsm -benchtime 3s -blockprofile b.out -mutexprofile m.out ./bench/
func BenchmarkDescribeClustersDuringCreateHsm(b *testing.B) {
	s, err := cloudhsmlocal.New()
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	seed25(b, c, s.URL)
	// Clusters that will receive an HSM, in another account.
	const n = 400
	type target struct{ id, az string }
	targets := make([]target, 0, n)
	for range n {
		body := []byte(`{"HsmType":"hsm2m.medium","SubnetIds":["subnet-0b0000000000000b1","subnet-0b0000000000000b2"]}`)
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/", bytes.NewReader(body))
		req.Header["Content-Type"] = []string{"application/x-amz-json-1.1"}
		req.Header["X-Amz-Target"] = []string{"BaldrApiService.CreateCluster"}
		req.Header["Authorization"] = []string{"AWS4-HMAC-SHA256 Credential=666666666666/20261126/us-east-1/cloudhsm/aws4_request, SignedHeaders=host, Signature=00"}
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var out struct {
			Cluster struct {
				ClusterId     string
				SubnetMapping map[string]string
			}
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("CreateCluster: %d %v", resp.StatusCode, err)
		}
		az := ""
		for k := range out.Cluster.SubnetMapping {
			if az == "" || k < az {
				az = k
			}
		}
		targets = append(targets, target{out.Cluster.ClusterId, az})
	}
	s.Advance(time.Second) // CREATE_IN_PROGRESS -> UNINITIALIZED
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := int(next.Add(1)) - 1
				if i >= len(targets) {
					return
				}
				body, _ := json.Marshal(map[string]string{"ClusterId": targets[i].id, "AvailabilityZone": targets[i].az})
				req, _ := http.NewRequest(http.MethodPost, s.URL+"/", bytes.NewReader(body))
				req.Header["Content-Type"] = []string{"application/x-amz-json-1.1"}
				req.Header["X-Amz-Target"] = []string{"BaldrApiService.CreateHsm"}
				req.Header["Authorization"] = []string{"AWS4-HMAC-SHA256 Credential=666666666666/20261126/us-east-1/cloudhsm/aws4_request, SignedHeaders=host, Signature=00"}
				resp, err := c.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("CreateHsm: HTTP %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	var mu sync.Mutex
	var lat []time.Duration
	body := []byte(`{"MaxResults": 25}`)
	b.SetParallelism(2)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			t := time.Now()
			resp, err := post(c, s.URL, "DescribeClusters", body)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mine = append(mine, time.Since(t))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	close(stop)
	wg.Wait()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "read-p99-ms")
		b.ReportMetric(float64(lat[len(lat)-1])/1e6, "read-max-ms")
	}
	b.ReportMetric(float64(min(next.Load(), int64(len(targets)))), "hsms")
}

// BenchmarkBackupsBecomeReady measures the domain applying n backups'
// CREATE_IN_PROGRESS -> READY transitions at once (one backup per cluster,
// all in one account), as a clock advance after a busy day does. Each
// transition looks at the cluster's other backups for retention; this
// must not cost O(backups in the account).
func BenchmarkBackupsBecomeReady(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("backups=%d", n), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				clk := clock.NewFrozen(time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC))
				srv, err := server.New(server.Config{InMemory: true, Clock: clk, Domain: cloudhsm.DefaultConfig()})
				if err != nil {
					b.Fatal(err)
				}
				snap := &cloudhsm.Snapshot{}
				for i := range n {
					snap.Backups = append(snap.Backups, &cloudhsm.Backup{
						Tenant:    cloudhsm.Tenant{Account: account, Region: "us-east-1"},
						ClusterID: fmt.Sprintf("cluster-%011d", i),
						State:     cloudhsm.BackupCreateInProgress,
					})
				}
				if err := srv.Service().Import(snap); err != nil {
					b.Fatal(err)
				}
				clk.Advance(time.Hour)
				b.StartTimer()
				if err := srv.Service().CatchUp(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				st := srv.Service().Stats()
				if got := st.Backups[cloudhsm.BackupReady]; got != n {
					b.Fatalf("%d backups READY, want %d", got, n)
				}
				srv.Close()
				b.StartTimer()
			}
		})
	}
}

// BenchmarkDescribeSharedBackups measures one page of DescribeBackups with
// Shared=true for an account of a region where another account holds n
// backups that are not shared: the page should not cost O(n).
func BenchmarkDescribeSharedBackups(b *testing.B) {
	for _, n := range []int{25, 100000} {
		b.Run(fmt.Sprintf("others=%d", n), func(b *testing.B) {
			srv, err := server.New(server.Config{InMemory: true, Domain: cloudhsm.DefaultConfig()})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			other := cloudhsm.Tenant{Account: "777777777777", Region: "us-east-1"}
			snap := &cloudhsm.Snapshot{}
			for i := range n {
				snap.Backups = append(snap.Backups, &cloudhsm.Backup{Tenant: other, ClusterID: fmt.Sprintf("cluster-%011d", i), State: cloudhsm.BackupReady})
			}
			if err := srv.Service().Import(snap); err != nil {
				b.Fatal(err)
			}
			caller := cloudhsm.Tenant{Account: account, Region: "us-east-1"}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := srv.Service().DescribeBackups(caller, cloudhsm.DescribeBackupsInput{Shared: true, Limit: 25}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// reusedIdentity hands out one HSM identity over and over, so that a
// benchmark of CreateHsm measures the domain, not RSA key generation.
type reusedIdentity struct {
	once sync.Once
	id   *pki.HSMIdentity
	csr  string
	err  error
}

func (r *reusedIdentity) NewIdentity(a *pki.Authority, req pki.IdentityRequest) (*pki.HSMIdentity, string, error) {
	r.once.Do(func() {
		src := pki.NewLocalIdentities()
		defer src.Close()
		req.CSR = true
		r.id, r.csr, r.err = src.NewIdentity(a, req)
	})
	return r.id, r.csr, r.err
}

func (r *reusedIdentity) Close() {}

// BenchmarkCreateHsmInBigAccount measures CreateHsm (keys aside) in an
// account holding n clusters. Choosing the HSM's address and checking the
// HSM quota must not scan the account's clusters: the address is chosen
// under the write lock, which every request waits for.
func BenchmarkCreateHsmInBigAccount(b *testing.B) {
	for _, n := range []int{25, 100000} {
		b.Run(fmt.Sprintf("clusters=%d", n), func(b *testing.B) {
			clk := clock.NewFrozen(time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC))
			st := store.NewMemory()
			cfg := cloudhsm.DefaultConfig()
			cfg.HsmsPerRegion = 1 << 20
			ids := &reusedIdentity{}
			svc, err := cloudhsm.New(cloudhsm.Options{Codec: records.Codec{}, Config: cfg, Clock: clk, Store: st,
				Network: network.NewLearned(cloudhsm.SubnetPlacements(st, records.Codec{})), Identities: func() pki.IdentitySource { return ids }})
			if err != nil {
				b.Fatal(err)
			}
			defer svc.Close()
			t := cloudhsm.Tenant{Account: account, Region: "us-east-1"}
			in := cloudhsm.CreateClusterInput{HsmType: cloudhsm.HsmTypeHsm2m, SubnetIDs: []string{"subnet-0b0000000000000b1", "subnet-0b0000000000000b2"}}
			var clusters []*cloudhsm.Cluster
			for range n {
				c, err := svc.CreateCluster(context.Background(), t, in)
				if err != nil {
					b.Fatal(err)
				}
				clusters = append(clusters, c)
			}
			clk.Advance(time.Hour) // UNINITIALIZED
			var azs []string
			for az := range clusters[0].SubnetMapping() {
				azs = append(azs, az)
			}
			slices.Sort(azs)
			// An UNINITIALIZED cluster takes one HSM, and two /24 subnets
			// hold 502: each pass creates one HSM in each of up to 400
			// clusters, then deletes them outside the timer.
			pass := min(n, 400)
			var made []*cloudhsm.Hsm
			var on []*cloudhsm.Cluster
			i := 0
			for b.Loop() {
				if len(made) == pass {
					b.StopTimer()
					clk.Advance(time.Hour) // ACTIVE, so they can be deleted
					if err := svc.CatchUp(); err != nil {
						b.Fatal(err)
					}
					for k, h := range made {
						if _, err := svc.DeleteHsm(t, cloudhsm.DeleteHsmInput{ClusterID: on[k].ID, HsmID: h.ID}); err != nil {
							b.Fatal(err)
						}
					}
					clk.Advance(time.Hour)
					if err := svc.CatchUp(); err != nil {
						b.Fatal(err)
					}
					made, on = made[:0], on[:0]
					b.StartTimer()
				}
				c := clusters[i%len(clusters)]
				h, err := svc.CreateHsm(context.Background(), t, cloudhsm.CreateHsmInput{ClusterID: c.ID, AZ: azs[i%len(azs)]})
				if err != nil {
					b.Fatal(err)
				}
				made, on = append(made, h), append(on, c)
				i++
			}
		})
	}
}

// BenchmarkDescribeBackupsFiltered measures DescribeBackups with a
// backupIds or clusterIds filter in an account of n backups: a lookup,
// whatever the size of the account.
func BenchmarkDescribeBackupsFiltered(b *testing.B) {
	for _, n := range []int{25, 100000} {
		srv, err := server.New(server.Config{InMemory: true, Domain: cloudhsm.DefaultConfig()})
		if err != nil {
			b.Fatal(err)
		}
		t := cloudhsm.Tenant{Account: account, Region: "us-east-1"}
		snap := &cloudhsm.Snapshot{}
		for i := range n {
			snap.Backups = append(snap.Backups, &cloudhsm.Backup{Tenant: t, ClusterID: fmt.Sprintf("cluster-%011d", i), State: cloudhsm.BackupReady})
		}
		if err := srv.Service().Import(snap); err != nil {
			b.Fatal(err)
		}
		mid := snap.Backups[n/2]
		for _, f := range []struct {
			name   string
			filter cloudhsm.BackupFilter
		}{
			{"backupIds", cloudhsm.BackupFilter{IDs: []string{mid.ID}}},
			{"clusterIds", cloudhsm.BackupFilter{ClusterIDs: []string{mid.ClusterID}}},
		} {
			b.Run(fmt.Sprintf("%s/backups=%d", f.name, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					out, _, err := srv.Service().DescribeBackups(t, cloudhsm.DescribeBackupsInput{Filter: f.filter, Limit: 50})
					if err != nil || len(out) != 1 || out[0].ID != mid.ID {
						b.Fatalf("got %d backups, err %v", len(out), err)
					}
				}
			})
		}
		srv.Close()
	}
}
