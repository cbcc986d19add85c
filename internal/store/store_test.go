package store_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store/storetest"
)

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		return store.NewMemory(), nil // not durable: the suite skips reopen checks
	})
}

func TestBoltConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		path := filepath.Join(t.TempDir(), "data", "state.db")
		s, err := store.OpenBolt(path, store.BoltOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s, func() store.Store {
			r, err := store.OpenBolt(path, store.BoltOptions{})
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			return r
		}
	})
}

// TestBoltSmallBatches runs the suite with tiny batch bounds, so that queued
// groups are split over many transactions.
func TestBoltSmallBatches(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		path := filepath.Join(t.TempDir(), "state.db")
		opts := store.BoltOptions{MaxBatchGroups: 3, MaxBatchBytes: 64}
		s, err := store.OpenBolt(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		return s, func() store.Store {
			r, err := store.OpenBolt(path, opts)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			return r
		}
	})
}

func TestBoltDataDirInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.OpenBolt(path, store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// flock locks belong to the open file, so a second open in this process
	// conflicts just as another process would.
	start := time.Now()
	s2, err := store.OpenBolt(path, store.BoltOptions{LockTimeout: 200 * time.Millisecond})
	if err == nil {
		s2.Close()
		t.Fatal("second OpenBolt on the same file succeeded")
	}
	if !errors.Is(err, store.ErrInUse) {
		t.Fatalf("second OpenBolt: %v, want ErrInUse", err)
	}
	if !strings.Contains(err.Error(), "data directory is in use by another cloudhsm-local process") {
		t.Fatalf("error text %q lacks the explanation", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second OpenBolt took %s", d)
	}

	// Once the first store is closed, the file can be opened again.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s3, err := store.OpenBolt(path, store.BoltOptions{})
	if err != nil {
		t.Fatalf("OpenBolt after Close: %v", err)
	}
	if err := s3.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBoltRejectsBadOptionsAndFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := store.OpenBolt(filepath.Join(dir, "a.db"), store.BoltOptions{MaxBatchGroups: -1}); err == nil {
		t.Error("negative MaxBatchGroups accepted")
	}
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a bolt file "), 1024), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := store.OpenBolt(garbage, store.BoltOptions{}); err == nil {
		s.Close()
		t.Error("OpenBolt accepted a file that is not a bbolt database")
	} else if !strings.Contains(err.Error(), garbage) {
		t.Errorf("error %q does not name the file", err)
	}
}

// Crash test.
//
// TestBoltCrash re-executes this test binary as a child running
// TestCrashChild, which writes through a Bolt store from many goroutines and
// prints "ack <key>" after each group's wait returned nil. The parent kills
// the child with SIGKILL after a number of acks (or a time limit), then checks
// that the file opens, passes bbolt's consistency check, and holds every
// acknowledged group, whole.

const (
	crashEnv     = "CLOUDHSM_STORE_CRASH_CHILD_DB" // gate: the child's database path
	crashWriters = 32
	crashPad     = 200 // value padding, so that commits span several pages
)

// crashValue is the value the child writes for key.
func crashValue(key string) string {
	return key + ":" + strings.Repeat("x", crashPad)
}

// TestCrashChild is the child process of TestBoltCrash; run normally, it
// skips.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("helper process for TestBoltCrash")
	}
	s, err := store.OpenBolt(path, store.BoltOptions{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "child: %v\n", err)
		os.Exit(3)
	}
	// A bound in case the parent never kills us.
	deadline := time.Now().Add(20 * time.Second)
	var (
		mu  sync.Mutex // the caller lock: Submit order == seq order
		seq int
		wg  sync.WaitGroup
	)
	for w := range crashWriters {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				key := fmt.Sprintf("w%02d-%07d", w, i)
				v := []byte(crashValue(key))
				mu.Lock()
				seq++
				wait := s.Submit([]store.Mutation{
					{Kind: "a", Key: key, Value: v},
					{Kind: "b", Key: key, Value: v},
					{Kind: "last", Key: fmt.Sprintf("w%02d", w), Value: []byte(strconv.Itoa(i))},
					{Kind: "seq", Key: "seq", Value: []byte(strconv.Itoa(seq))},
				})
				mu.Unlock()
				if err := wait(); err != nil {
					fmt.Fprintf(os.Stderr, "child: wait: %v\n", err)
					os.Exit(4)
				}
				// One Write per line: concurrent lines never interleave.
				fmt.Fprintf(os.Stdout, "ack %s\n", key)
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "child: close: %v\n", err)
		os.Exit(5)
	}
}

func TestBoltCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	for round, killAfter := range []int{200, 1000, 2000} {
		t.Run(fmt.Sprintf("round%d-kill-after-%d-acks", round, killAfter), func(t *testing.T) {
			crashRound(t, killAfter, 3*time.Second)
		})
	}
}

func crashRound(t *testing.T, killAfter int, maxTime time.Duration) {
	path := filepath.Join(t.TempDir(), "state.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var killed atomic.Bool
	kill := func() {
		if killed.CompareAndSwap(false, true) {
			_ = cmd.Process.Kill() // SIGKILL
		}
	}
	timer := time.AfterFunc(maxTime, kill)
	defer timer.Stop()

	acked := map[string]bool{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		key, ok := strings.CutPrefix(sc.Text(), "ack ")
		if !ok {
			continue // test framework chatter
		}
		acked[key] = true
		if len(acked) == killAfter {
			kill()
		}
	}
	// Lines read after the kill were written, hence acknowledged, before it.
	if err := sc.Err(); err != nil {
		kill()
		t.Fatalf("reading child output: %v", err)
	}
	werr := cmd.Wait()
	timer.Stop()
	if !killed.Load() {
		t.Fatalf("child exited by itself (%v) before being killed; stderr:\n%s", werr, stderr.String())
	}
	if len(acked) == 0 {
		t.Fatalf("child acknowledged nothing before the kill (%v); stderr:\n%s", werr, stderr.String())
	}
	t.Logf("killed after %d acks (%v)", len(acked), werr)

	// The file opens and is consistent.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("bbolt cannot open the file after the crash: %v", err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	if cerr := db.Close(); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil {
		t.Fatalf("bbolt consistency check after the crash: %v", err)
	}

	// Every acknowledged group is there, whole.
	s, err := store.OpenBolt(path, store.BoltOptions{})
	if err != nil {
		t.Fatalf("OpenBolt after the crash: %v", err)
	}
	defer s.Close()
	recs, err := storetest.LoadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]map[string]string{}
	for _, r := range recs {
		if kinds[r.Kind] == nil {
			kinds[r.Kind] = map[string]string{}
		}
		kinds[r.Kind][r.Key] = string(r.Value)
	}
	lost := 0
	for key := range acked {
		for _, kind := range []string{"a", "b"} {
			if v, ok := kinds[kind][key]; !ok || v != crashValue(key) {
				lost++
				if lost <= 10 {
					t.Errorf("acknowledged %s/%s: present=%v", kind, key, ok)
				}
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d acknowledged records lost out of %d acks", lost, len(acked))
	}
	// Groups are atomic: a and b hold the same keys, and each writer's
	// "last" record names its latest group present.
	if len(kinds["a"]) != len(kinds["b"]) {
		t.Errorf("partial group after crash: %d records in a, %d in b", len(kinds["a"]), len(kinds["b"]))
	}
	for key, v := range kinds["a"] {
		if kinds["b"][key] != v {
			t.Errorf("partial group after crash: a/%s present, b/%s = %q", key, key, kinds["b"][key])
		}
	}
	maxI := map[string]int{}
	for key := range kinds["a"] {
		w, is, _ := strings.Cut(key, "-")
		i, _ := strconv.Atoi(is)
		maxI[w] = max(maxI[w], i)
	}
	for w, i := range maxI {
		if got := kinds["last"][w]; got != strconv.Itoa(i) {
			t.Errorf("last/%s = %q, want %d (the writer's latest group present)", w, got, i)
		}
	}
	if got, want := kinds["seq"]["seq"], strconv.Itoa(len(kinds["a"])); got != want {
		t.Errorf("seq/seq = %q, want %s: the recovered groups are not a prefix of the Submit order", got, want)
	}
	t.Logf("recovered %d groups for %d acks", len(kinds["a"]), len(acked))

	// The recovered store is writable.
	if err := s.Submit([]store.Mutation{{Kind: "a", Key: "after-crash", Value: []byte("ok")}})(); err != nil {
		t.Fatalf("write after crash: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkBoltSubmit32 measures durable group commits with 32 goroutines,
// each submitting one small group (under a shared caller lock, as the domain
// does) and waiting for it before the next.
func BenchmarkBoltSubmit32(b *testing.B) {
	s, err := store.OpenBolt(filepath.Join(b.TempDir(), "state.db"), store.BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	value := bytes.Repeat([]byte("v"), 128)
	var (
		mu   sync.Mutex
		next atomic.Int64
		wg   sync.WaitGroup
	)
	b.ResetTimer()
	start := time.Now()
	for range 32 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				mu.Lock()
				wait := s.Submit([]store.Mutation{{Kind: "cluster", Key: strconv.FormatInt(i%10000, 10), Value: value}})
				mu.Unlock()
				if err := wait(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "groups/s")
}

func TestSharedMemoryConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		db := store.NewSharedMemory(nil)
		return db.Open(), func() store.Store { return db.Open() }
	})
}

func TestSharedMemorySharedConformance(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) func() store.Shared {
		db := store.NewSharedMemory(nil)
		return func() store.Shared { return db.Open() }
	})
}
