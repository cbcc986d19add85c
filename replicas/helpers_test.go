// Package replicas tests several processes of the binary serving one estate
// from one PostgreSQL database, behind a client that sends each request to
// the next replica, as a round-robin load balancer does: the rules hold
// across replicas, under concurrency, through kill -9 of a replica, the
// death of the one doing timed work, a database restart and a rolling
// restart. PostgreSQL is a private server of this test binary
// (internal/testkit/pgtest); under CI=true its absence fails the suite.
package replicas

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"

	"github.com/cloudhsm-local/cloudhsm-local/internal/admin"
	"github.com/cloudhsm-local/cloudhsm-local/internal/sdkhttp"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit/pgtest"
)

var tmpRoot string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "chl-replicas-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	tmpRoot = d
	code := pgtest.Main(m)
	_ = os.RemoveAll(tmpRoot)
	os.Exit(code)
}

var build struct {
	once sync.Once
	path string
	err  error
}

func binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() { build.path, build.err = testkit.BuildServerBinary(tmpRoot) })
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// freePort returns a loopback port nobody listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// replica is one process of the binary on a fixed port, which it keeps
// across restarts (a load balancer's target).
type replica struct {
	t      testing.TB
	args   []string
	env    []string
	port   int
	URL    string
	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	stderr *os.File
}

// startReplica starts the binary on dbURL with args.
func startReplica(t testing.TB, dbURL string, env []string, args ...string) *replica {
	t.Helper()
	r := &replica{t: t, port: freePort(t), env: env}
	r.args = append([]string{"--database-url", dbURL, "--log-level", "warn", "--keygen", "inline"}, args...)
	r.URL = "http://127.0.0.1:" + strconv.Itoa(r.port)
	r.start()
	t.Cleanup(func() { r.kill(syscall.SIGKILL) })
	return r
}

// start starts the process and waits for its banner.
func (r *replica) start() {
	r.t.Helper()
	errFile, err := os.CreateTemp(tmpRoot, "stderr-")
	if err != nil {
		r.t.Fatal(err)
	}
	cmd := exec.Command(binary(r.t), append([]string{"--listen", "127.0.0.1:" + strconv.Itoa(r.port)}, r.args...)...)
	cmd.Env = append(os.Environ(), r.env...)
	cmd.Stderr = errFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	done := make(chan struct{})
	banner := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			if first {
				banner <- strings.HasPrefix(sc.Text(), "cloudhsm-local listening on ")
				first = false
			}
		}
		if first {
			banner <- false
		}
	}()
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	r.mu.Lock()
	r.cmd, r.done, r.stderr = cmd, done, errFile
	r.mu.Unlock()
	select {
	case ok := <-banner:
		if !ok {
			r.kill(syscall.SIGKILL)
			r.t.Fatalf("replica did not start; stderr:\n%s", r.stderrTail())
		}
	case <-time.After(60 * time.Second):
		r.kill(syscall.SIGKILL)
		r.t.Fatalf("replica did not start within 60s; stderr:\n%s", r.stderrTail())
	}
}

// kill sends sig and waits until the process is gone.
func (r *replica) kill(sig syscall.Signal) {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

func (r *replica) stderrTail() string {
	r.mu.Lock()
	f := r.stderr
	r.mu.Unlock()
	b, _ := os.ReadFile(f.Name())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// health returns the replica's health answer.
func (r *replica) health(ctx context.Context) (int, admin.Health, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.URL+"/_cloudhsm-local/health", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, admin.Health{}, err
	}
	defer resp.Body.Close()
	var h admin.Health
	err = json.NewDecoder(resp.Body).Decode(&h)
	return resp.StatusCode, h, err
}

// admin returns an admin API client of the replica.
func (r *replica) admin() *admin.Client {
	return &admin.Client{Endpoint: r.URL, HTTP: http.DefaultClient}
}

// roundRobin sends each request to the next replica, as a load balancer
// does, with a passive health check as balancers have (nginx's max_fails,
// HAProxy's observe): a replica that refused a connection is left out of
// the rotation for a moment.
type roundRobin struct {
	targets   []*url.URL
	downUntil []atomic.Int64 // unix nanoseconds
	next      atomic.Uint64
	base      http.RoundTripper
}

func (rr *roundRobin) pick() int {
	now := time.Now().UnixNano()
	for range rr.targets {
		i := int(rr.next.Add(1)-1) % len(rr.targets)
		if rr.downUntil[i].Load() <= now {
			return i
		}
	}
	return int(rr.next.Add(1)-1) % len(rr.targets) // all down: try anyway
}

func (rr *roundRobin) RoundTrip(req *http.Request) (*http.Response, error) {
	i := rr.pick()
	target := rr.targets[i]
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host, out.Host = target.Scheme, target.Host, target.Host
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		out.Body = body
	}
	resp, err := rr.base.RoundTrip(out)
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		rr.downUntil[i].Store(time.Now().Add(500 * time.Millisecond).UnixNano())
	}
	return resp, err
}

// balanced returns an aws-sdk-go-v2 client of account behind a round-robin
// balancer over replicas, making at most attempts attempts per call with
// the SDK's standard retry rules (no backoff, no client-side rate limit,
// so a retry goes at once to the next replica).
func balanced(replicas []*replica, account string, attempts int) *cloudhsmv2.Client {
	rr := &roundRobin{base: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 5 * time.Second}}
	for _, r := range replicas {
		u, _ := url.Parse(r.URL)
		rr.targets = append(rr.targets, u)
	}
	rr.downUntil = make([]atomic.Int64, len(rr.targets))
	return cloudhsmv2.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider(account, "secret", ""),
		BaseEndpoint: aws.String(replicas[0].URL),
		HTTPClient:   sdkhttp.PrivateBodies{Client: &http.Client{Transport: rr, Timeout: 30 * time.Second}},
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = attempts
				o.RateLimiter = ratelimit.None
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 20 * time.Millisecond, nil })
			})
		},
	})
}

// direct returns a client of one replica, without retries.
func direct(r *replica, account string) *cloudhsmv2.Client {
	return balanced([]*replica{r}, account, 1)
}

// estate starts n replicas on a new database of the test binary's
// PostgreSQL, with args for each.
func estate(t *testing.T, n int, args ...string) (*pgtest.Server, string, []*replica) {
	t.Helper()
	pg := pgtest.Shared(t)
	db := pg.NewDatabase(t)
	var rs []*replica
	for range n {
		rs = append(rs, startReplica(t, db, nil, args...))
	}
	return pg, db, rs
}

// until polls cond every 20ms until it holds or d passes (waiting on real
// processes: a lease taken over, a database back).
func until(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func subnets(i int) []string {
	return []string{fmt.Sprintf("subnet-%08x", 2*i), fmt.Sprintf("subnet-%08x", 2*i+1)}
}
