package main

import (
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

// freeAddr is a loopback address nothing listens on (just now).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// envWithoutSettings is this process's environment without CLOUDHSM_LOCAL_*.
func envWithoutSettings() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) {
			env = append(env, kv)
		}
	}
	return env
}

// waitHealthy polls the health endpoint at addr until it answers. This
// waits for a real process (the first `go run` compiles), not for a
// simulated state.
func waitHealthy(t *testing.T, addr string, timeout time.Duration, exited <-chan struct{}, output func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get("http://" + addr + "/_cloudhsm-local/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("the server's launcher exited before it answered:\n%s", output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer at %s within %s:\n%s", addr, timeout, output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// childrenOf lists the pids of the processes whose parent is pid.
func childrenOf(pid int) []int {
	var kids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so from the last ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			kids = append(kids, p)
		}
	}
	return kids
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// `go run` killed with SIGTERM (a script's `kill $!`) does not pass the
// signal on; the server it started must stop anyway, by the SIGTERM path:
// the port and the data directory released.
func TestGoRunSIGTERMStopsTheServer(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs the server with go run")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		testkit.MissingTool(t, "the go command is not on PATH: the server started by go run is not tested")
	}
	addr, dataDir := freeAddr(t), t.TempDir()
	out, err := os.Create(filepath.Join(t.TempDir(), "output"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	output := func() string { b, _ := os.ReadFile(out.Name()); return string(b) }
	// A file, not a pipe: with a pipe, Wait would also wait for the
	// server, which holds the pipe's other end.
	cmd := exec.Command(goBin, "run", ".", "--data-dir", dataDir, "--listen", addr)
	cmd.Env = envWithoutSettings()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	waitHealthy(t, addr, 5*time.Minute, exited, output)

	kids := childrenOf(cmd.Process.Pid)
	if len(kids) != 1 {
		t.Fatalf("go run has %d children %v, want the server alone", len(kids), kids)
	}
	server := kids[0]
	t.Cleanup(func() {
		if alive(server) {
			_ = syscall.Kill(server, syscall.SIGKILL)
		}
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-exited

	deadline := time.Now().Add(10 * time.Second)
	for alive(server) {
		if time.Now().After(deadline) {
			t.Fatalf("the server (pid %d) still runs 10s after its go run got SIGTERM:\n%s", server, output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("%s not released: %v", addr, err)
	}
	ln.Close()
	b, err := store.OpenBolt(filepath.Join(dataDir, "state.db"), store.BoltOptions{LockTimeout: 100 * time.Millisecond})
	if errors.Is(err, store.ErrInUse) {
		t.Fatalf("the data directory is still held: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if log := output(); !strings.Contains(log, "shutting down") {
		t.Errorf("the server did not shut down by the SIGTERM path:\n%s", log)
	}
}

// A server started any other way outlives the shell that started it.
func TestServerOutlivesItsShell(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs the server binary")
	}
	bin, err := testkit.BuildServerBinary(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	outFile := filepath.Join(t.TempDir(), "output")
	// The shell starts the server in the background and ends at once.
	sh := exec.Command("sh", "-c", `"$0" --in-memory --listen "$1" >"$2" 2>&1 & echo $!`, bin, addr, outFile)
	sh.Env = envWithoutSettings()
	pidText, err := sh.Output()
	if err != nil {
		t.Fatalf("sh: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil {
		t.Fatalf("sh printed %q", pidText)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	output := func() string { b, _ := os.ReadFile(outFile); return string(b) }
	// The shell has ended: the server answers all the same.
	waitHealthy(t, addr, time.Minute, nil, output)
	if !alive(pid) {
		t.Fatalf("server %d is gone", pid)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}
