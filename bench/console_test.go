package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/console"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
)

// watch opens one console's live stream on the estate page and, as the
// console's script does, fetches the page again after each change event
// (with the page's ETag: 304 when the change left it as it was), until
// stop is closed. It returns when the stream is open.
func watch(b *testing.B, url string, pages *http.Client, stop <-chan struct{}, refetched *atomic.Int64, wg *sync.WaitGroup) {
	b.Helper()
	addr := strings.TrimPrefix(url, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(conn, "GET %sevents?page=estate HTTP/1.1\r\nHost: %s\r\n\r\n", console.Prefix, addr)
	r := bufio.NewReader(conn)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
		b.Fatalf("stream: %q %v", line, err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-stop
		conn.Close()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		etag := ""
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if !strings.HasPrefix(line, "data: ") || !strings.Contains(line, `"estate"`) {
				continue
			}
			var ev console.Batch
			if json.Unmarshal([]byte(line[len("data: "):]), &ev) != nil {
				continue
			}
			// As the page's script does: the ETag it holds, and the
			// event's generation.
			req, _ := http.NewRequest("GET", url+console.Prefix, nil)
			if etag != "" {
				req.Header.Set("If-None-Match", etag)
			}
			req.Header.Set("X-Console-Seen", fmt.Sprintf("%d,%d", ev.Gen, ev.Reqs))
			resp, err := pages.Do(req)
			if err != nil {
				continue
			}
			if resp.StatusCode == http.StatusOK {
				etag = resp.Header.Get("ETag")
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			refetched.Add(1)
		}
	}()
}

// BenchmarkDescribeClustersWatched measures DescribeClusters throughput (a
// 25-cluster page, 8 parallel clients, keep-alive) while open consoles
// watch the estate, against none. A writer creates a cluster every 100 ms
// throughout (a change the estate page shows), so the consoles get events
// and fetch their page again, as browsers do. Target: 100 watchers within
// 10 % of none. cpu-us/op is the process's CPU time (user and system) per
// DescribeClusters, the watchers' share included: on a machine shared
// with other work, throughput is noisy where CPU time is not.
//
//	go test -run '^$' -bench DescribeClustersWatched -benchtime 5s -count 3 ./bench/
//
// requestlog=0 is the server without the request log, to see what
// recording each call costs.
func BenchmarkDescribeClustersWatched(b *testing.B) {
	for _, tc := range []struct {
		name                 string
		requestLog, watchers int
	}{
		{"requestlog=0/watchers=0", 0, 0},
		{"requestlog=200/watchers=0", 200, 0},
		{"requestlog=200/watchers=100", 200, 100},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srv, err := server.New(server.Config{InMemory: true, RequestLog: tc.requestLog, Domain: cloudhsm.DefaultConfig()})
			if err != nil {
				b.Fatal(err)
			}
			hs := httptest.NewServer(srv.Handler())
			defer func() { hs.Close(); _ = srv.Close() }()
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
			seed25(b, c, hs.URL)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var refetched, tags atomic.Int64
			pages := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200, DisableCompression: true}}
			for range tc.watchers {
				watch(b, hs.URL, pages, stop, &refetched, &wg)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					body := fmt.Sprintf(`{"HsmType":"hsm2m.medium","SubnetIds":["subnet-%08x%09x"]}`, 1<<30+i, 0)
					if resp, err := post(c, hs.URL, "CreateCluster", []byte(body)); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						tags.Add(1)
					}
				}
			}()
			body := []byte(`{"MaxResults": 25}`)
			b.ReportAllocs()
			b.SetParallelism(8)
			cpu0 := cpuTime()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if !postOK(b, c, hs.URL, "DescribeClusters", body) {
						return
					}
				}
			})
			b.StopTimer()
			cpu := cpuTime() - cpu0
			close(stop)
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/op")
			b.ReportMetric(float64(tags.Load()), "changes")
			b.ReportMetric(float64(refetched.Load()), "page-fetches")
		})
	}
}

// BenchmarkConsoleEstatePage renders the console's landing page (counts by
// account, region and state, the newest 25 clusters, what falls due)
// without its cache, beside n clusters in 10 accounts: one pass over the
// estate, once per change for all the consoles that watch it.
func BenchmarkConsoleEstatePage(b *testing.B) {
	for _, n := range []int{25, 100000} {
		b.Run(fmt.Sprintf("clusters=%d", n), func(b *testing.B) {
			srv, err := server.New(server.Config{InMemory: true, Domain: cloudhsm.DefaultConfig()})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			snap := &cloudhsm.Snapshot{}
			for i := range n {
				t := cloudhsm.Tenant{Account: fmt.Sprintf("%012d", 100000000000+i%10), Region: "us-east-1"}
				snap.Clusters = append(snap.Clusters, &cloudhsm.Cluster{Tenant: t, HsmType: "hsm2m.medium", State: cloudhsm.ClusterActive})
			}
			if err := srv.Service().Import(snap); err != nil {
				b.Fatal(err)
			}
			h := srv.Handler()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++ // a new URL each time: no cached page
				req := httptest.NewRequest("GET", fmt.Sprintf("%s?state=ACTIVE&n=%d", console.Prefix, i), nil)
				req.RemoteAddr, req.Host = "127.0.0.1:1", "localhost"
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("estate page: %d", w.Code)
				}
			}
		})
	}
}
