//go:build unix

package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

// served is the server command (run) serving in this test process.
type served struct {
	endpoint       string
	stdout, stderr *testkit.LockedBuffer
	done           chan error
}

// startServe runs the server command with args and returns once it
// answers its health endpoint, its banner printed.
func startServe(t *testing.T, args ...string) *served {
	t.Helper()
	s := &served{stdout: &testkit.LockedBuffer{}, stderr: &testkit.LockedBuffer{}, done: make(chan error, 1)}
	go func() { s.done <- run(args, s.stdout, s.stderr, nil) }()
	// This waits for a real listener, not for a simulated state.
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-s.done:
			t.Fatalf("run %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, s.stdout, s.stderr)
		default:
		}
		if s.endpoint == "" {
			for sc := bufio.NewScanner(strings.NewReader(s.stdout.String())); sc.Scan(); {
				if e, ok := strings.CutPrefix(sc.Text(), "cloudhsm-local listening on "); ok {
					s.endpoint = e
				}
			}
		}
		if s.endpoint != "" {
			if _, _, err := runCmd(t, "admin", "health", "--endpoint", s.endpoint); err == nil {
				return s
			}
		}
		if time.Now().After(deadline) {
			s.stop(t)
			t.Fatalf("run %s: not answering after 60s\nstdout:\n%s", strings.Join(args, " "), s.stdout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGINT to this process, as Ctrl-C does, and waits for run to
// return; its log is then flushed.
func (s *served) stop(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("run after SIGINT: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not shut down on SIGINT")
	}
}

// TestServeAndShutdown runs the real server path: flags, seed, banner, the
// admin API through the admin command, and a clean shutdown on SIGINT.
func TestServeAndShutdown(t *testing.T) {
	clearEnv(t)
	s := startServe(t, "--in-memory", "--listen", "127.0.0.1:0", "--seed", "../../examples/seed-estate.json", "--log-level", "error")
	text := s.stdout.String()
	for _, want := range []string{"/metrics", "loopback callers only", "loaded: from the seed ../../examples/seed-estate.json (the store was empty): 4 clusters ("} {
		if !strings.Contains(text, want) {
			t.Errorf("banner lacks %q:\n%s", want, text)
		}
	}
	stdout, _, err := runCmd(t, "admin", "export", "--endpoint", s.endpoint)
	if err != nil || !strings.Contains(stdout, "cluster-t3ho6ylrvqe") {
		t.Fatalf("export: %v", err)
	}
	s.stop(t)
}

// A request's log line, in each --log-format, says how long it took as a
// duration a person reads ("1.234ms"), not as integer nanoseconds.
func TestRequestLogLine(t *testing.T) {
	clearEnv(t)
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			s := startServe(t, "--in-memory", "--listen", "127.0.0.1:0", "--log-format", format)
			req, _ := http.NewRequest(http.MethodPost, s.endpoint+"/", strings.NewReader("{}"))
			req.Header.Set("X-Amz-Target", "BaldrApiService.DescribeClusters")
			req.Header.Set("Content-Type", "application/x-amz-json-1.1")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			s.stop(t)
			var line string
			for l := range strings.Lines(s.stderr.String()) {
				if strings.Contains(l, "DescribeClusters") {
					line = strings.TrimSpace(l)
				}
			}
			if line == "" {
				t.Fatalf("no log line of the request in:\n%s", s.stderr)
			}
			var d string
			switch format {
			case "json":
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("not one JSON object: %q: %v", line, err)
				}
				if rec["msg"] != "request" || rec["status"] != 200.0 {
					t.Errorf("log line %q", line)
				}
				d, _ = rec["duration"].(string)
			case "text":
				if strings.HasPrefix(line, "{") || !strings.Contains(line, " msg=request ") || !strings.Contains(line, " status=200") {
					t.Errorf("not a text log line of the request: %q", line)
				}
				for _, f := range strings.Fields(line) {
					if v, ok := strings.CutPrefix(f, "duration="); ok {
						d = v
					}
				}
			}
			if v, err := time.ParseDuration(d); err != nil || v <= 0 || !strings.ContainsAny(d, "nµums") {
				t.Errorf("duration %q is not a readable duration (%v) in %q", d, err, line)
			}
		})
	}
}
