//go:build unix

package main

import (
	"bufio"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeAndShutdown runs the real server path: flags, seed, banner, the
// admin API through the admin command, and a clean shutdown on SIGINT.
func TestServeAndShutdown(t *testing.T) {
	clearEnv(t)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run([]string{"--in-memory", "--listen", "127.0.0.1:0", "--seed", "../../examples/seed-estate.json", "--log-level", "error"}, pw, io.Discard)
		pw.Close()
	}()
	lines := make(chan string, 32)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var endpoint string
	var banner []string
	timeout := time.After(60 * time.Second)
	for endpoint == "" || !strings.Contains(strings.Join(banner, "\n"), "seed: ") {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("server exited: %v\n%s", <-done, strings.Join(banner, "\n"))
			}
			banner = append(banner, l)
			if e, ok := strings.CutPrefix(l, "cloudhsm-local listening on "); ok {
				endpoint = e
			}
		case err := <-done:
			t.Fatalf("server exited: %v", err)
		case <-timeout:
			t.Fatalf("no banner: %v", banner)
		}
	}
	text := strings.Join(banner, "\n")
	for _, want := range []string{"/metrics", "loopback callers only", "seed: ../../examples/seed-estate.json (4 clusters, 5 HSMs, 6 backups)"} {
		if !strings.Contains(text, want) {
			t.Errorf("banner lacks %q:\n%s", want, text)
		}
	}
	// The server answers once Serve runs, after the signal handler is set.
	var err error
	for range 100 {
		if _, _, err = runCmd(t, "admin", "health", "--endpoint", endpoint); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("health: %v", err)
	}
	stdout, _, err := runCmd(t, "admin", "export", "--endpoint", endpoint)
	if err != nil || !strings.Contains(stdout, "cluster-t3ho6ylrvqe") {
		t.Fatalf("export: %v", err)
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after SIGINT: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not shut down on SIGINT")
	}
}
