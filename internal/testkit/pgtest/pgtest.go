//go:build linux

// Package pgtest starts private PostgreSQL servers for tests: Debian's
// PostgreSQL binaries (initdb, postgres), a cluster in a temporary
// directory, a free port on 127.0.0.1, durable settings (fsync on) sized for
// a small machine, run as the postgres user when the test runs as root
// (PostgreSQL refuses root).
//
// A test binary shares one server (Shared), started on first use and
// stopped by Main when the binary ends; each test takes a fresh database
// of it (NewDatabase). Tests that stop and start the server start their
// own (Start). Should the binary die (SIGINT, a panic, kill -9), the
// kernel stops its servers (they get SIGQUIT, PostgreSQL's immediate
// shutdown, when their parent goes), and the next binary to start a
// server removes the directories left behind. No signal handler is
// installed: tests of this repository send themselves SIGINT.
//
// Where PostgreSQL is not installed, tests skip loudly; under CI=true they
// fail, naming the package to install (testkit.MissingTool).
//
// The shared server is the package's one piece of global state: one
// PostgreSQL per test binary, whose databases keep tests apart.
package pgtest

// The servers run on Linux only (the parent-death signal, setuid). Other
// systems get pgtest_other.go, which skips.

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

// installHint names what to install when PostgreSQL is missing.
const installHint = "install Debian's postgresql package (apt-get install postgresql) or put initdb and postgres on PATH"

// startTimeout bounds how long a server may take to accept connections.
const startTimeout = 60 * time.Second

// Server is one private PostgreSQL server.
type Server struct {
	binDir string
	dir    string // owns data/ and postgres.log
	port   int
	cred   *syscall.Credential // nil: run as the current user

	mu      sync.Mutex
	running *process
	started bool // once: the port is the server's for good
	dbs     atomic.Int64
}

// process is one run of the postmaster.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait returned
}

// FindBinaries returns the directory holding initdb and postgres: that of
// initdb on PATH, else the newest /usr/lib/postgresql/*/bin.
func FindBinaries() (string, error) {
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(found, func(i, j int) bool { return versionOf(found[i]) > versionOf(found[j]) })
	dirs = append(dirs, found...)
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL's initdb and postgres are neither on PATH nor under /usr/lib/postgresql/*/bin: " + installHint)
}

func versionOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Start starts a private server for tb alone, stopped (and its files
// removed) when tb ends. Use it for tests that stop the server.
func Start(tb testing.TB) *Server {
	tb.Helper()
	binDir, err := FindBinaries()
	if err != nil {
		testkit.MissingTool(tb, err.Error())
	}
	s, err := newServer(binDir)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

var shared struct {
	main atomic.Bool // Main runs the tests: it stops the server after them
	once sync.Once
	s    *Server
	err  error
}

// Shared returns the test binary's server, starting it on first use. Call
// Main from TestMain so that it stops when the tests end.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	binDir, err := FindBinaries()
	if err != nil {
		testkit.MissingTool(tb, err.Error())
	}
	if !shared.main.Load() {
		tb.Fatal("pgtest: Shared needs the package's TestMain to call pgtest.Main, which stops the server when the tests end (or use pgtest.Start)")
	}
	shared.once.Do(func() { shared.s, shared.err = newServer(binDir) })
	if shared.err != nil {
		tb.Fatalf("pgtest: the shared server: %v", shared.err)
	}
	return shared.s
}

// Main runs the tests of m and then stops the shared server, if one was
// started: `func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }`.
func Main(m *testing.M) int {
	shared.main.Store(true)
	code := m.Run()
	if shared.s != nil {
		shared.s.Close()
	}
	return code
}

// ownerFile, in a server's directory, holds the pid of the test binary
// that made it: a later binary removes the directories of binaries that
// are gone (interrupted before they could).
const ownerFile = "owner.pid"

// removeStale removes the server directories whose test binary and
// server have both exited. The owner file is read first: a directory
// another binary is still making has none yet (it is written whole, by a
// rename), and one that has it is judged by the pid it holds.
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pgtest-[0-9]*"))
	for _, dir := range dirs {
		owner, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not made by this package, or still being made
		}
		if pidAlive(owner) || alive(filepath.Join(dir, "data", "postmaster.pid")) {
			continue
		}
		_ = os.RemoveAll(dir)
	}
}

// alive reports whether the process whose pid starts the file lives.
func alive(pidFile string) bool {
	b, err := os.ReadFile(pidFile)
	return err == nil && pidAlive(b)
}

// pidAlive reports whether the process whose pid starts b lives.
func pidAlive(b []byte) bool {
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) != syscall.ESRCH
}

// writeOwner marks dir as this binary's, whole or not at all.
func writeOwner(dir string) error {
	tmp := filepath.Join(dir, ownerFile+".new")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, ownerFile))
}

// newServer makes a cluster in a new temporary directory and starts it.
func newServer(binDir string) (*Server, error) {
	removeStale()
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	if err := writeOwner(dir); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	s := &Server{binDir: binDir, dir: dir}
	if os.Geteuid() == 0 {
		if s.cred, err = postgresUser(); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("give %s to the postgres user: %w", dir, err)
		}
	}
	if err := s.initdb(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := s.Start(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// initdb makes the cluster: a copy of a cluster that initdb made once for
// this PostgreSQL and user, and keeps in the temporary directory (initdb
// takes seconds, a copy a fraction of one).
func (s *Server) initdb() error {
	tmpl, err := s.template()
	if err != nil {
		return err
	}
	cmd := exec.Command("cp", "-a", tmpl, filepath.Join(s.dir, "data"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("copy the initdb template %s: %v\n%s", tmpl, err, out)
	}
	return nil
}

// template returns the directory of a fresh cluster made by initdb for
// this PostgreSQL and user, making it if needed. Concurrent test binaries
// each make one and the first to rename it into place wins.
func (s *Server) template() (string, error) {
	out, err := exec.Command(filepath.Join(s.binDir, "postgres"), "--version").Output()
	if err != nil {
		return "", fmt.Errorf("postgres --version: %w", err)
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\n%s\n%d\n%v", s.binDir, out, templateFormat, s.cred)
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("pgtest-template-%d-%x", os.Geteuid(), h.Sum64()))
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err == nil {
		return dir, nil
	}
	work, err := os.MkdirTemp("", "pgtest-initdb-")
	if err != nil {
		return "", fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(work)
	if s.cred != nil {
		if err := os.Chown(work, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return "", fmt.Errorf("give %s to the postgres user: %w", work, err)
		}
	}
	data := filepath.Join(work, "data")
	// Trust authentication on loopback (the port is private to the test),
	// C locale (byte order), UTF-8. Only initdb's final flush is skipped:
	// the server itself runs with fsync on.
	cmd := exec.Command(filepath.Join(s.binDir, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	cmd.Dir = work
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("initdb: %v\n%s", err, out)
	}
	if err := os.Rename(data, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "PG_VERSION")); serr == nil {
			return dir, nil // another test binary made it first
		}
		return "", fmt.Errorf("keep the initdb template: %w", err)
	}
	return dir, nil
}

// templateFormat changes when initdb's arguments do, so that an older
// template is not reused.
const templateFormat = 1

// postgresUser is the credential of the postgres user, for a test running
// as root.
func postgresUser() (*syscall.Credential, error) {
	out, err := exec.Command("id", "-u", "postgres").Output()
	if err != nil {
		return nil, fmt.Errorf("the tests run as root, which PostgreSQL refuses, and there is no postgres user to run it as (%v): %s", err, installHint)
	}
	uid, err1 := strconv.Atoi(strings.TrimSpace(string(out)))
	out, err = exec.Command("id", "-g", "postgres").Output()
	gid, err2 := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("read the postgres user's ids: %v %v %v", err, err1, err2)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// Start starts the server (again, after Stop), on the port it had before
// (a new free port the first time), and waits until it accepts
// connections.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running != nil {
		return nil
	}
	if s.dir == "" {
		return errors.New("pgtest: the server was closed")
	}
	var last error
	// The first start may lose its free port to another program: it
	// tries another. A restart keeps the port the tests know.
	for attempt := 0; attempt < 3; attempt++ {
		if !s.started {
			p, err := freePort()
			if err != nil {
				return err
			}
			s.port = p
		}
		p, err := s.spawn()
		if err != nil {
			return err
		}
		if last = s.waitReady(p); last == nil {
			s.running, s.started = p, true
			return nil
		}
		stopProcess(p, syscall.SIGQUIT)
		if s.started {
			break
		}
	}
	return last
}

// spawn starts the postmaster. The goroutine that starts it keeps its OS
// thread until the server exits: the parent-death signal (SIGQUIT,
// PostgreSQL's immediate shutdown) is tied to that thread.
func (s *Server) spawn() (*process, error) {
	logf, err := os.OpenFile(filepath.Join(s.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("server log: %w", err)
	}
	args := []string{"-D", filepath.Join(s.dir, "data")}
	for _, kv := range s.settings() {
		args = append(args, "-c", kv)
	}
	p := &process{exited: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(s.binDir, "postgres"), args...)
	p.cmd.Dir = s.dir
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.Env = append(os.Environ(), "LC_ALL=C")
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the server
		defer logf.Close()
		if err := p.cmd.Start(); err != nil {
			started <- fmt.Errorf("start postgres: %w", err)
			return
		}
		started <- nil
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// settings are the server's: durable (fsync and synchronous commit on, as
// in production), small (two cores, many servers side by side), loopback
// only.
func (s *Server) settings() []string {
	return []string{
		"listen_addresses=127.0.0.1",
		"port=" + strconv.Itoa(s.port),
		"unix_socket_directories=",
		"fsync=on",
		"synchronous_commit=on",
		"full_page_writes=on",
		"shared_buffers=64MB",
		"max_connections=300",
		"wal_level=minimal",
		"max_wal_senders=0",
		"max_wal_size=512MB",
		"max_worker_processes=4",
		"max_parallel_workers=0",
		"max_parallel_workers_per_gather=0",
		"max_parallel_maintenance_workers=0",
		"dynamic_shared_memory_type=posix",
		"huge_pages=off",
		"log_min_messages=warning",
		"log_checkpoints=off",
		"logging_collector=off",
	}
}

// waitReady polls until the server accepts a connection, it exits, or
// startTimeout passes.
func (s *Server) waitReady(p *process) error {
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := pgx.Connect(ctx, s.URL("postgres"))
		if err == nil {
			_ = c.Close(ctx)
			cancel()
			return nil
		}
		cancel()
		select {
		case <-p.exited:
			return fmt.Errorf("postgres exited at start: %v\n%s", err, s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not accept connections within %s: %v\n%s", startTimeout, err, s.logTail())
		}
		time.Sleep(25 * time.Millisecond) // polling an external process
	}
}

// logTail is the end of the server's log, for error messages.
func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return "postgres.log: " + string(b)
}

// Stop shuts the server down: fast (SIGINT: connections are cut, a
// checkpoint is written) or, with immediate, as a crash would (SIGQUIT: no
// checkpoint; the next start recovers from the WAL). It returns once the
// server has exited.
func (s *Server) Stop(immediate bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == nil {
		return
	}
	sig := syscall.SIGINT
	if immediate {
		sig = syscall.SIGQUIT
	}
	stopProcess(s.running, sig)
	s.running = nil
}

func stopProcess(p *process, sig syscall.Signal) {
	signalAll(p.cmd.Process.Pid, syscall.SIGCONT) // a frozen server cannot stop
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		signalAll(p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

// Freeze stops every process of the server (SIGSTOP): connections stay
// open and nothing answers, as with a server that hangs or a network that
// drops packets. Thaw resumes them.
func (s *Server) Freeze() { s.signalGroup(syscall.SIGSTOP) }

// Thaw resumes a frozen server.
func (s *Server) Thaw() { s.signalGroup(syscall.SIGCONT) }

func (s *Server) signalGroup(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running != nil {
		signalAll(s.running.cmd.Process.Pid, sig)
	}
}

// signalAll signals the postmaster pid and its children (each of which
// PostgreSQL puts in a session of its own, out of reach of a process
// group's signal).
func signalAll(pid int, sig syscall.Signal) {
	if sig == syscall.SIGSTOP {
		_ = syscall.Kill(pid, sig) // first: it forks no new child meanwhile
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, not ')'.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			_ = syscall.Kill(child, sig)
		}
	}
	if sig != syscall.SIGSTOP {
		_ = syscall.Kill(pid, sig)
	}
}

// Close stops the server and removes its files. It is safe to call more
// than once.
func (s *Server) Close() {
	s.Stop(false)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
		s.dir = ""
	}
}

// Port is the server's port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// URL is the connection URL of database db, as the superuser.
func (s *Server) URL(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// NewDatabase creates an empty database for tb and returns its URL. The
// database is dropped when tb ends (if the server still runs).
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), s.dbs.Add(1))
	if err := s.exec("CREATE DATABASE " + name + " TEMPLATE template0"); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	tb.Cleanup(func() { _ = s.exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	return s.URL(name)
}

// Exec runs one statement as the superuser in the postgres database.
func (s *Server) exec(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// freePort returns a port of 127.0.0.1 that nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
