package main

// How the binary meets operators' mistakes and hostile conditions: stray
// arguments, fault rules that cannot work, a data directory from a newer
// version.

import (
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// A stray argument stops flag parsing: `--in-memory false --listen X` runs
// in memory on the default port. Every argument after it is silently
// ignored; it must be refused.
func TestStrayArgumentRefused(t *testing.T) {
	clearEnv(t)
	// With the bug the stray "false" ends parsing, --listen is ignored and
	// the error is about something else (or the server starts).
	// The environment names an address that cannot be listened on, so that
	// the buggy path fails at listen instead of serving.
	t.Setenv("CLOUDHSM_LOCAL_LISTEN", "256.0.0.1:0")
	_, _, err := runCmd(t, "--in-memory", "false", "--listen", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), `"false"`) {
		t.Fatalf("stray argument: got %v, want an error naming \"false\"", err)
	}
}

func postRaw(t *testing.T, url, target, body string) (*http.Response, string, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if target != "" {
		req.Header.Set("X-Amz-Target", "BaldrApiService."+target)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b), nil
}

// docs/admin-api.md: probability is "in (0, 1]". An explicit 0 (a suite
// that turns a fault "off" with p=0) must be refused, not fire on every call.
func TestFaultProbabilityZeroRefused(t *testing.T) {
	srv, err := server.New(server.Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	resp, body, err := postRaw(t, ts.URL+"/_cloudhsm-local/faults", "", `{"operation":"DescribeClusters","error":"ThrottlingException","probability":0}`)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadRequest {
		_, api, _ := postRaw(t, ts.URL+"/", "DescribeClusters", `{}`)
		t.Fatalf("probability 0 accepted (%d %s); DescribeClusters now answers %s", resp.StatusCode, body, api)
	}
}

// A latency rule longer than --write-timeout (default 30s; rules allow up
// to 10m) makes the client see a dropped connection instead of the
// injected, slow error.
func TestFaultLatencyBeyondWriteTimeout(t *testing.T) {
	srv, err := server.New(server.Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.Config.WriteTimeout = 500 * time.Millisecond
	ts.Start()
	defer ts.Close()
	if resp, body, err := postRaw(t, ts.URL+"/_cloudhsm-local/faults", "", `{"operation":"DescribeClusters","error":"ThrottlingException","latency":"1s"}`); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("add rule: %v %s", err, body)
	}
	resp, body, err := postRaw(t, ts.URL+"/", "DescribeClusters", `{}`)
	if err != nil {
		t.Fatalf("a 1s latency rule under a 500ms write timeout: %v (want the injected ThrottlingException)", err)
	}
	if resp.StatusCode != 400 || !strings.Contains(body, "ThrottlingException") {
		t.Fatalf("got %d %s", resp.StatusCode, body)
	}
}

// A data directory written by a newer cloudhsm-local that keeps a kind this
// version does not know must be refused, not loaded with those records
// silently dropped (and later overwritten).
func TestUnknownRecordKindRefused(t *testing.T) {
	dir := t.TempDir()
	b, err := store.OpenBolt(filepath.Join(dir, "state.db"), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Submit([]store.Mutation{{Kind: "cluster-v9", Key: "123456789012/us-east-1/0001", Value: []byte{0xC9, 1, 2, 3}}})(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{DataDir: dir})
	if err == nil {
		srv.Close()
		t.Fatal("a store holding records of an unknown kind (a newer format) opened without an error")
	}
}

// A damaged state.db stops the start with one refusal that names the file
// and says what to do (internal/store's TestDamagedFileRefused covers every
// kind of damage; this is what the command prints).
func TestDamagedStateRefusedOnce(t *testing.T) {
	clearEnv(t)
	// A real estate's file, from a run with the example seed.
	src := t.TempDir()
	srv, err := server.New(server.Config{DataDir: src, SeedFile: "../../examples/seed-estate.json"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(src, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 64<<10)
	_, _ = rand.Read(random)
	foreign := func(path string) {
		// Another program's bbolt file: buckets this one never makes.
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte("users"))
			if err != nil {
				return err
			}
			return b.Put([]byte("alice"), []byte(`{"admin":true}`))
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		write func(path string)
		want  string
	}{
		{"random bytes", func(p string) { writeFile(t, p, random) }, "move it aside to start with an empty estate, or restore it from a copy"},
		{"empty", func(p string) { writeFile(t, p, nil) }, "(the file is empty): move it aside"},
		{"cut inside the header pages", func(p string) { writeFile(t, p, good[:5000]) }, "shorter than its two header pages): move it aside"},
		{"cut short", func(p string) { writeFile(t, p, good[:len(good)/4]) }, "move it aside to start with an empty estate, or restore it from a copy"},
		{"the clusters' page zeroed", func(p string) { writeFile(t, p, zeroBucketPage(t, filepath.Join(src, "state.db"), good, "cluster")) }, "(a page is not what it should be"},
		{"another program's bbolt file", foreign, "or another directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "state.db")
			tc.write(path)
			_, _, err := runCmd(t, "--data-dir", dir, "--listen", "127.0.0.1:0")
			if err == nil {
				t.Fatal("started")
			}
			msg := err.Error()
			if strings.Count(msg, path) != 1 || !strings.Contains(msg, tc.want) {
				t.Errorf("refusal %q: want the file named once and %q", msg, tc.want)
			}
			if damaged := path + " is not a cloudhsm-local database or is damaged ("; tc.name != "another program's bbolt file" && !strings.HasPrefix(msg, damaged) {
				t.Errorf("refusal %q does not start with %q", msg, damaged)
			}
			if strings.Contains(msg, "runtime error") || strings.Contains(msg, "nil pointer") || strings.Count(msg, "\n") > 0 {
				t.Errorf("refusal %q is not one plain message", msg)
			}
		})
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// zeroBucketPage returns content, the bbolt file at path, with the root
// page of bucket zeroed: the file opens, and reading the bucket fails.
func zeroBucketPage(t *testing.T, path string, content []byte, bucket string) []byte {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var off int
	_ = db.View(func(tx *bolt.Tx) error {
		off = int(tx.Bucket([]byte(bucket)).Root()) * db.Info().PageSize
		return nil
	})
	if off == 0 {
		t.Fatalf("bucket %s is inline: no page of its own", bucket)
	}
	out := slices.Clone(content)
	clear(out[off : off+db.Info().PageSize])
	return out
}
