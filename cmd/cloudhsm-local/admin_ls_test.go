package main

import (
	"strings"
	"testing"
)

// TestAdminLs prints an imported estate: the cluster with its HSMs, the
// backup whose cluster is gone, the clock; --account narrows it.
func TestAdminLs(t *testing.T) {
	clearEnv(t)
	e := newAdminEnv(t, "")
	if s := e.admin(t, "ls"); !strings.Contains(s, "(no clusters or backups)") || !strings.Contains(s, "clock  2026-01-01T00:00:00Z (frozen)") {
		t.Fatalf("ls of an empty server:\n%s", s)
	}
	e.admin(t, "import", snapshotFile(t))
	got := e.admin(t, "ls")
	lines := strings.Split(got, "\n")
	want := []struct {
		line   int
		fields []string
	}{
		{2, []string{"ACCOUNT", "REGION", "RESOURCE", "ID", "STATE"}},
		{3, []string{"111122223333", "eu-west-1", "cluster", "cluster-aaaaaaaaaaa", "INITIALIZED", "2 HSM(s)"}},
		{4, []string{"hsm", "hsm-aaaaaaaaaaa", "eu-west-1a", "10.0.1.11"}},
		{5, []string{"hsm", "hsm-bbbbbbbbbbb", "10.0.1.12"}},
		{6, []string{"444455556666", "us-east-1", "backup", "backup-aaaaaaaaaaa"}},
	}
	for _, w := range want {
		for _, f := range w.fields {
			if w.line >= len(lines) || !strings.Contains(lines[w.line], f) {
				t.Fatalf("line %d lacks %q:\n%s", w.line, f, got)
			}
		}
	}
	if !strings.Contains(got, "1 cluster(s), 1 backup(s) without a cluster") {
		t.Fatalf("no summary:\n%s", got)
	}
	only := e.admin(t, "ls", "--account", "444455556666")
	if strings.Contains(only, "cluster-aaaaaaaaaaa") || !strings.Contains(only, "backup-aaaaaaaaaaa") {
		t.Fatalf("ls --account:\n%s", only)
	}
}
