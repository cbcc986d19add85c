package main

// How the binary meets operators' mistakes and hostile conditions: stray
// arguments, fault rules that cannot work, a data directory from a newer
// version.

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
