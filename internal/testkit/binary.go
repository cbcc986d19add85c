package testkit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/pki"
)

// BuildServerBinary builds ./cmd/cloudhsm-local of the module the test runs
// in as dir/cloudhsm-local and returns its path. env is added to the
// environment of go build (e.g. "CGO_ENABLED=0").
func BuildServerBinary(dir string, env ...string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside the module")
	}
	bin := filepath.Join(dir, "cloudhsm-local")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/cloudhsm-local")
	cmd.Dir = filepath.Dir(gomod)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/cloudhsm-local: %v\n%s", err, b)
	}
	return bin, nil
}

var listeningRe = regexp.MustCompile(`^cloudhsm-local listening on (http://\S+)`)

// StartBinary starts the built server bin with --in-memory on a free
// loopback port and returns its endpoint; the server stops (SIGINT, then
// SIGKILL after 10 s) when the test ends. A test fails when the server's
// identity helper failed (a fallback clients would never see), and its
// log is shown when the test failed.
func StartBinary(t *testing.T, bin string) string {
	t.Helper()
	cmd := exec.Command(bin, "--in-memory", "--listen", "127.0.0.1:0", "--log-level", "warn")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &LockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if strings.Contains(stderr.String(), pki.HelperGoneMessage) {
			t.Errorf("the server's identity helper failed:\n%s", Tail(stderr.String(), 4000))
		}
		if t.Failed() && stderr.String() != "" {
			t.Logf("server stderr:\n%s", Tail(stderr.String(), 4000))
		}
	})
	first := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		first <- line
		_, _ = io.Copy(io.Discard, r)
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case line := <-first:
		m := listeningRe.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			t.Fatalf("server's first line is %q, want \"cloudhsm-local listening on http://ADDR\"; stderr:\n%s", line, stderr.String())
		}
		return m[1]
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not say where it listens within 30s; stderr:\n%s", stderr.String())
	}
	return ""
}

// Tail returns the last n bytes of s (all of it when shorter).
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
