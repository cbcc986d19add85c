package store_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

const truncatedDBEnv = "CLOUDHSM_LOCAL_TEST_TRUNCATED_DB"

// TestTruncatedFileChild opens the file named by CLOUDHSM_LOCAL_TEST_TRUNCATED_DB,
// loads it and prints the outcome; run normally, it does nothing.
func TestTruncatedFileChild(t *testing.T) {
	path := os.Getenv(truncatedDBEnv)
	if path == "" {
		return // only a child of TestDamagedFileRefused does something
	}
	b, err := store.OpenBolt(path, store.BoltOptions{})
	if err == nil {
		err = b.Load(func(string, string, []byte) error { return nil })
		b.Close()
	}
	fmt.Printf("CORRUPT: %v\nRESULT: %v\n", errors.Is(err, store.ErrCorrupt), err)
}

// goodDB writes a database of 50 records of 500 bytes and returns its
// bytes, the length its pages reach (the file may be longer: bbolt grows
// it ahead) and the offset of the page at the root of its one bucket.
func goodDB(t *testing.T) (content []byte, pagesEnd, bucketRoot int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
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
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pagesEnd, bucketRoot = pagesOf(t, path, "cluster")
	if pagesEnd <= 4*os.Getpagesize() || pagesEnd > len(good) {
		t.Fatalf("pages reach %d bytes of %d", pagesEnd, len(good))
	}
	return good, pagesEnd, bucketRoot
}

// pagesOf returns the length the pages of the bbolt file at path reach
// and the offset of the root page of its bucket.
func pagesOf(t *testing.T, path, bucket string) (pagesEnd, bucketRoot int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		pagesEnd = int(tx.Size())
		bucketRoot = int(tx.Bucket([]byte(bucket)).Root()) * db.Info().PageSize
		return nil
	})
	if bucketRoot == 0 {
		t.Fatalf("bucket %s is inline: no page of its own", bucket)
	}
	return pagesEnd, bucketRoot
}

// A state.db that is damaged (random bytes, emptied, cut short at any
// length: disk full, a copy cut short) is refused with one message that
// names the file and says what to do, never a crash (SIGBUS through
// bbolt's mmap) nor bbolt's bare words. Each file is opened in a child
// process, so that a crash is seen as one.
func TestDamagedFileRefused(t *testing.T) {
	good, pagesEnd, bucketRoot := goodDB(t)
	page := os.Getpagesize() // bbolt's page size on this machine
	random := make([]byte, 64<<10)
	_, _ = rand.Read(random)
	zeroedHeaders := append(make([]byte, 2*page), good[2*page:]...)
	// The records' page zeroed: the file opens, and loading it fails.
	zeroedRecords := slices.Clone(good)
	clear(zeroedRecords[bucketRoot : bucketRoot+page])
	for _, tc := range []struct {
		name    string
		content []byte
		ok      bool
		detail  string // what the refusal says is wrong, when it says more than "damaged"
	}{
		{"whole (control)", good, true, ""},
		{"random bytes", random, false, "neither of its two header pages is a valid bbolt header"},
		{"empty", nil, false, "the file is empty"},
		{"cut inside the first header page", good[:100], false, "neither of its two header pages"},
		{"cut inside the second header page", good[:page+page/4], false, "shorter than its two header pages"},
		{"cut after the header pages", good[:2*page], false, "it was cut short"},
		{"cut in half", good[:pagesEnd/2], false, "it was cut short"},
		{"last page missing", good[:pagesEnd-page], false, "it was cut short"},
		{"one byte short", good[:pagesEnd-1], false, "it was cut short"},
		{"room to grow cut off (control: nothing lost)", good[:pagesEnd], true, ""},
		{"both header pages zeroed", zeroedHeaders, false, "neither of its two header pages"},
		{"the records' page zeroed", zeroedRecords, false, "a page is not what it should be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestTruncatedFileChild$", "-test.v")
			cmd.Env = append(os.Environ(), truncatedDBEnv+"="+path)
			out, _ := cmd.CombinedOutput()
			s := string(out)
			_, result, _ := strings.Cut(s, "RESULT: ")
			result, _, _ = strings.Cut(result, "\n")
			switch {
			case strings.Contains(s, "SIGBUS") || strings.Contains(s, "fatal error") || strings.Contains(s, "panic:"):
				t.Fatalf("%d of %d bytes: the process crashed:\n%.600s", len(tc.content), len(good), s)
			case tc.ok:
				if result != "<nil>" {
					t.Fatalf("the whole file is refused: %s", s)
				}
			case result == "<nil>":
				t.Fatalf("%d of %d bytes: opened and loaded without an error", len(tc.content), len(good))
			case !strings.Contains(s, "CORRUPT: true"):
				t.Errorf("not a store.ErrCorrupt: %s", result)
			}
			if tc.ok {
				return
			}
			t.Logf("refused: %s", result)
			want := path + " is not a cloudhsm-local database or is damaged ("
			tail := "): move it aside to start with an empty estate, or restore it from a copy"
			if !strings.HasPrefix(result, want) || !strings.HasSuffix(result, tail) || strings.Count(result, path) != 1 {
				t.Errorf("refusal %q, want one message %q...%q", result, want, tail)
			}
			if !strings.Contains(result, tc.detail) {
				t.Errorf("refusal %q does not say %q", result, tc.detail)
			}
			for _, noise := range []string{"runtime error", "nil pointer", "store: "} {
				if strings.Contains(result, noise) {
					t.Errorf("refusal %q says %q", result, noise)
				}
			}
		})
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
