package main

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/faults"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
	"github.com/cloudhsm-local/cloudhsm-local/internal/snapshot"
)

// serverFlags is every flag of the server command.
var serverFlags = []string{
	"listen", "data-dir", "in-memory", "topology", "profile", "activation", "default-account",
	"deleted-retention", "quota-clusters", "quota-hsms", "log-level", "read-header-timeout",
	"read-timeout", "write-timeout", "max-connections", "admin-token", "seed", "pprof", "keygen", "gc-heap-floor-mb", "log-format",
}

func runCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = run(args, &out, &errb, nil)
	return out.String(), errb.String(), err
}

// clearEnv unsets every CLOUDHSM_LOCAL_* variable for the test.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "CLOUDHSM_LOCAL_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
}

func TestHelpListsEveryFlag(t *testing.T) {
	clearEnv(t)
	_, stderr, err := runCmd(t, "--help")
	if err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, f := range serverFlags {
		if !strings.Contains(stderr, "\n  -"+f+" ") && !strings.Contains(stderr, "\n  -"+f+"\n") {
			t.Errorf("--help does not list -%s", f)
		}
	}
	for _, s := range []string{"CLOUDHSM_LOCAL_", "cloudhsm-local admin <command>", "cloudhsm-local copy-estate --from", "one is made up and printed"} {
		if !strings.Contains(stderr, s) {
			t.Errorf("--help does not mention %q", s)
		}
	}
}

func TestEnvSetsFlags(t *testing.T) {
	clearEnv(t)
	t.Setenv("CLOUDHSM_LOCAL_ACTIVATION", "sometimes")
	if _, _, err := runCmd(t, "--in-memory"); err == nil || !strings.Contains(err.Error(), `--activation must be auto or manual, got "sometimes"`) {
		t.Fatalf("CLOUDHSM_LOCAL_ACTIVATION: %v", err)
	}
	// A flag overrides the environment.
	missing := filepath.Join(t.TempDir(), "missing.json")
	if _, _, err := runCmd(t, "--in-memory", "--activation", "auto", "--seed", missing); err == nil || !strings.Contains(err.Error(), "seed "+missing) {
		t.Fatalf("--activation over env: %v", err)
	}
	t.Setenv("CLOUDHSM_LOCAL_ACTIVATION", "")
	os.Unsetenv("CLOUDHSM_LOCAL_ACTIVATION")

	t.Setenv("CLOUDHSM_LOCAL_SEED", missing)
	t.Setenv("CLOUDHSM_LOCAL_IN_MEMORY", "true")
	if _, _, err := runCmd(t); err == nil || !strings.Contains(err.Error(), "seed "+missing) {
		t.Fatalf("CLOUDHSM_LOCAL_SEED: %v", err)
	}
	os.Unsetenv("CLOUDHSM_LOCAL_SEED")

	t.Setenv("CLOUDHSM_LOCAL_MAX_CONNECTIONS", "many")
	if _, _, err := runCmd(t); err == nil || !strings.Contains(err.Error(), "CLOUDHSM_LOCAL_MAX_CONNECTIONS") {
		t.Fatalf("CLOUDHSM_LOCAL_MAX_CONNECTIONS: %v", err)
	}
	os.Unsetenv("CLOUDHSM_LOCAL_MAX_CONNECTIONS")

	t.Setenv("CLOUDHSM_LOCAL_LISTEN", "256.0.0.1:1")
	if _, _, err := runCmd(t); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("CLOUDHSM_LOCAL_LISTEN: %v", err)
	}
}

// adminEnv is a real server behind httptest, for the admin subcommands.
type adminEnv struct {
	srv *server.Server
	url string
}

func newAdminEnv(t *testing.T, token string) *adminEnv {
	t.Helper()
	srv, err := server.New(server.Config{InMemory: true, AdminToken: token, Clock: clock.NewFrozen(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		_ = srv.Close()
	})
	return &adminEnv{srv: srv, url: hs.URL}
}

func (e *adminEnv) admin(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, err := runCmd(t, append([]string{"admin", "--endpoint", e.url}, args...)...)
	if err != nil {
		t.Fatalf("admin %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return stdout
}

func (e *adminEnv) adminErr(t *testing.T, args ...string) error {
	t.Helper()
	_, _, err := runCmd(t, append([]string{"admin", "--endpoint", e.url}, args...)...)
	if err == nil {
		t.Fatalf("admin %s succeeded", strings.Join(args, " "))
	}
	return err
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}

// exported reads the document `admin export` wrote.
func exported(t *testing.T, s string) *cloudhsm.Snapshot {
	t.Helper()
	snap, err := snapshot.Decode(strings.NewReader(s))
	if err != nil {
		t.Fatalf("export %.200q: %v", s, err)
	}
	return snap
}

// snapshotFile writes a small snapshot (of version 1, which import still
// reads): an INITIALIZED cluster with two
// ACTIVE HSMs whose placeholder identities spare Import key generation.
func snapshotFile(t *testing.T) string {
	t.Helper()
	doc := `{"version": 1, "clusters": [{
	  "Tenant": {"Account": "111122223333", "Region": "eu-west-1"},
	  "ID": "cluster-aaaaaaaaaaa", "State": "INITIALIZED",
	  "VpcID": "vpc-0a1b2c3d4e5f60718", "SecurityGroup": "sg-0c3f1a9b8e7d6c5b4",
	  "Subnets": [{"ID": "subnet-0a1b2c3d4e5f60718", "VpcID": "vpc-0a1b2c3d4e5f60718", "AZ": "eu-west-1a", "CIDR": "10.0.1.0/24"}],
	  "Hsms": [
	    {"ID": "hsm-aaaaaaaaaaa", "AZ": "eu-west-1a", "EniID": "eni-0a9f8e7d6c5b4a391", "EniIP": "10.0.1.11", "Identity": {"Serial": "RCN0000000001"}},
	    {"ID": "hsm-bbbbbbbbbbb", "AZ": "eu-west-1a", "EniID": "eni-0a9f8e7d6c5b4a392", "EniIP": "10.0.1.12", "Identity": {"Serial": "RCN0000000002"}}
	  ]}],
	  "backups": [{"Tenant": {"Account": "444455556666", "Region": "us-east-1"}, "ID": "backup-aaaaaaaaaaa", "ClusterID": "cluster-bbbbbbbbbbb"}]}`
	p := filepath.Join(t.TempDir(), "snap.json")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAdminCommands(t *testing.T) {
	clearEnv(t)
	e := newAdminEnv(t, "")

	if h := decode[map[string]string](t, e.admin(t, "health")); h["status"] != "ok" {
		t.Fatalf("health = %v", h)
	}
	if c := decode[map[string]any](t, e.admin(t, "clock")); c["now"] != "2026-01-01T00:00:00Z" || c["frozen"] != true {
		t.Fatalf("clock = %v", c)
	}
	if c := decode[map[string]any](t, e.admin(t, "advance", "90m")); c["now"] != "2026-01-01T01:30:00Z" {
		t.Fatalf("advance = %v", c)
	}
	if c := decode[map[string]any](t, e.admin(t, "resume")); c["frozen"] != false {
		t.Fatalf("resume = %v", c)
	}
	if c := decode[map[string]any](t, e.admin(t, "freeze")); c["frozen"] != true {
		t.Fatalf("freeze = %v", c)
	}

	// import, export
	if res := decode[map[string]int](t, e.admin(t, "import", snapshotFile(t))); res["clusters"] != 1 || res["hsms"] != 2 || res["backups"] != 1 {
		t.Fatalf("import = %v", res)
	}
	snap := exported(t, e.admin(t, "export"))
	if len(snap.Clusters) != 1 || snap.Clusters[0].ID != "cluster-aaaaaaaaaaa" || len(snap.Backups) != 1 {
		t.Fatalf("export = %d clusters, %d backups", len(snap.Clusters), len(snap.Backups))
	}
	out := filepath.Join(t.TempDir(), "export.json")
	if s := e.admin(t, "export", "--output", out); s != "" {
		t.Fatalf("export --output wrote to stdout: %q", s)
	}
	if b, err := os.ReadFile(out); err != nil || !bytes.Contains(b, []byte("cluster-aaaaaaaaaaa")) {
		t.Fatalf("export --output: %v", err)
	}

	// activate (flags after the positional argument work too)
	if err := e.adminErr(t, "activate", "cluster-aaaaaaaaaaa"); !strings.Contains(err.Error(), "404") {
		t.Fatalf("activate in the default tenant: %v", err)
	}
	if c := decode[map[string]any](t, e.admin(t, "activate", "cluster-aaaaaaaaaaa", "--account", "111122223333", "--region", "eu-west-1")); c["State"] != "ACTIVE" {
		t.Fatalf("activate = %v", c)
	}

	// degrade, heal
	hsm := []string{"--cluster", "cluster-aaaaaaaaaaa", "--hsm", "hsm-bbbbbbbbbbb", "--account", "111122223333", "--region", "eu-west-1"}
	if c := decode[map[string]any](t, e.admin(t, append([]string{"degrade"}, hsm...)...)); c["State"] != "DEGRADED" {
		t.Fatalf("degrade = %v", c)
	}
	if c := decode[map[string]any](t, e.admin(t, append([]string{"heal"}, hsm...)...)); c["State"] != "ACTIVE" {
		t.Fatalf("heal = %v", c)
	}
	if err := e.adminErr(t, "degrade", "--cluster", "cluster-aaaaaaaaaaa"); !strings.Contains(err.Error(), "--cluster and --hsm are required") {
		t.Fatalf("degrade without --hsm: %v", err)
	}

	// reset
	if r := decode[map[string]string](t, e.admin(t, "reset", "--account", "444455556666")); r["account"] != "444455556666" {
		t.Fatalf("reset = %v", r)
	}
	snap = exported(t, e.admin(t, "export"))
	if len(snap.Clusters) != 1 || len(snap.Backups) != 1 || snap.Backups[0].Tenant.Account != "111122223333" {
		// Left: the cluster and the backup its activation took.
		t.Fatalf("after reset of one account: %d clusters, %d backups", len(snap.Clusters), len(snap.Backups))
	}
	e.admin(t, "reset")
	if snap := exported(t, e.admin(t, "export")); len(snap.Clusters) != 0 {
		t.Fatalf("after reset: %d clusters", len(snap.Clusters))
	}

	checkAdminFaults(t, e)

	// usage errors
	for _, args := range [][]string{
		{}, {"frobnicate"}, {"advance"}, {"advance", "later"}, {"import"}, {"activate"},
		{"faults"}, {"faults", "explode"}, {"faults", "delete"}, {"health", "extra"},
	} {
		e.adminErr(t, args...)
	}
}

// checkAdminFaults drives `admin faults` add, list, delete and clear.
func checkAdminFaults(t *testing.T, e *adminEnv) {
	t.Helper()
	r := decode[faults.Rule](t, e.admin(t, "faults", "add", "--operation", "DescribeClusters", "--error", "ThrottlingException", "--count", "2", "--latency", "5ms"))
	if r.ID == "" || r.Count != 2 || time.Duration(r.Latency) != 5*time.Millisecond {
		t.Fatalf("faults add = %+v", r)
	}
	decode[faults.Rule](t, e.admin(t, "faults", "add", "--operation", "*", "--account", "111122223333", "--error", "CloudHsmServiceException", "--probability", "0.5"))
	if list := decode[map[string][]faults.Rule](t, e.admin(t, "faults", "list")); len(list["rules"]) != 2 || list["rules"][0].ID != r.ID {
		t.Fatalf("faults list = %v", list)
	}
	if err := e.adminErr(t, "faults", "add", "--operation", "DescribeCluster", "--error", "ThrottlingException"); !strings.Contains(err.Error(), "unknown operation") {
		t.Fatalf("faults add with a typo: %v", err)
	}
	e.admin(t, "faults", "delete", r.ID)
	if err := e.adminErr(t, "faults", "delete", r.ID); !strings.Contains(err.Error(), "404") {
		t.Fatalf("deleting twice: %v", err)
	}
	if d := decode[map[string]int](t, e.admin(t, "faults", "clear")); d["deleted"] != 1 {
		t.Fatalf("faults clear = %v", d)
	}
	if list := decode[map[string][]faults.Rule](t, e.admin(t, "faults", "list")); len(list["rules"]) != 0 {
		t.Fatalf("after clear: %v", list)
	}
}

func TestAdminHelp(t *testing.T) {
	clearEnv(t)
	_, stderr, err := runCmd(t, "admin", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range adminCommands() {
		if !strings.Contains(stderr, "\n  "+c.name) {
			t.Errorf("admin --help does not list %s", c.name)
		}
		_, sub, err := runCmd(t, "admin", c.name, "--help")
		if err != nil {
			t.Errorf("admin %s --help: %v", c.name, err)
		}
		if !strings.Contains(sub, "Usage: cloudhsm-local admin "+c.name) || !strings.Contains(sub, "-endpoint") {
			t.Errorf("admin %s --help:\n%s", c.name, sub)
		}
	}
	_, sub, _ := runCmd(t, "admin", "faults", "--help")
	for _, f := range []string{"-operation", "-error", "-latency", "-probability", "-count", "-account"} {
		if !strings.Contains(sub, f) {
			t.Errorf("admin faults --help lacks %s", f)
		}
	}
}

func TestAdminEnvAndToken(t *testing.T) {
	clearEnv(t)
	e := newAdminEnv(t, "s3cret")
	t.Setenv("CLOUDHSM_LOCAL_ENDPOINT", e.url)
	if _, _, err := runCmd(t, "admin", "health"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("health without token: %v", err)
	}
	if _, _, err := runCmd(t, "admin", "health", "--token", "s3cret"); err != nil {
		t.Fatalf("health --token: %v", err)
	}
	t.Setenv("CLOUDHSM_LOCAL_ADMIN_TOKEN", "s3cret")
	if _, _, err := runCmd(t, "admin", "health"); err != nil {
		t.Fatalf("health with CLOUDHSM_LOCAL_ADMIN_TOKEN: %v", err)
	}
	if _, _, err := runCmd(t, "admin", "--token", "wrong", "health"); err == nil {
		t.Fatal("--token should override the environment")
	}
	// Nothing listens there: the command fails instead of hanging.
	if _, _, err := runCmd(t, "admin", "health", "--endpoint", "http://127.0.0.1:1", "--timeout", "2s"); err == nil {
		t.Fatal("health against nothing succeeded")
	}
}
