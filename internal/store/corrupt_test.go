package store_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

const truncatedDBEnv = "CLOUDHSM_LOCAL_TEST_TRUNCATED_DB"

// TestTruncatedFileChild opens the file named by CLOUDHSM_LOCAL_TEST_TRUNCATED_DB and
// prints the outcome; run normally, it skips.
func TestTruncatedFileChild(t *testing.T) {
	path := os.Getenv(truncatedDBEnv)
	if path == "" {
		return // only a child of TestTruncatedFileIsAnError does something
	}
	b, err := store.OpenBolt(path, store.BoltOptions{})
	if err == nil {
		err = b.Load(func(string, string, []byte) error { return nil })
		b.Close()
	}
	fmt.Printf("RESULT: %v\n", err)
}

// A state.db that lost its tail (disk full, a copy cut short) must be
// refused with an error naming the file, not crash the process with SIGBUS.
func TestTruncatedFileIsAnError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	b, err := store.OpenBolt(path, store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := b.Submit([]store.Mutation{{Kind: "cluster", Key: fmt.Sprintf("k%03d", i), Value: []byte(strings.Repeat("v", 500))}})(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{8192, fi.Size() / 2} {
		good, _ := os.ReadFile(path)
		cut := filepath.Join(dir, fmt.Sprintf("cut-%d.db", size))
		if err := os.WriteFile(cut, good[:size], 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestTruncatedFileChild$", "-test.v")
		cmd.Env = append(os.Environ(), truncatedDBEnv+"="+cut)
		out, _ := cmd.CombinedOutput()
		s := string(out)
		switch {
		case strings.Contains(s, "SIGBUS") || strings.Contains(s, "fatal error") || strings.Contains(s, "panic:"):
			t.Errorf("truncated to %d of %d bytes: the process crashed:\n%.600s", size, fi.Size(), s)
		case strings.Contains(s, "RESULT: <nil>"):
			t.Errorf("truncated to %d of %d bytes: opened and loaded without an error", size, fi.Size())
		case !strings.Contains(s, "RESULT: store: open "+cut):
			t.Errorf("truncated to %d of %d bytes: error does not name the file:\n%.600s", size, fi.Size(), s)
		}
	}
}

// A panic in Load's callback is the caller's bug: it goes on as a panic,
// never reported as a damaged file.
func TestLoadCallbackPanicIsNotCorruption(t *testing.T) {
	b, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Submit([]store.Mutation{{Kind: "cluster", Key: "k", Value: []byte("v")}})(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r != "caller bug" {
			t.Fatalf("recovered %v, want the callback's own panic", r)
		}
	}()
	err = b.Load(func(string, string, []byte) error { panic("caller bug") })
	t.Fatalf("Load returned %v instead of letting the callback's panic through", err)
}
