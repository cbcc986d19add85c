package admin_test

// An export imported into a fresh server is that server's export too, and
// the imported estate carries on as the original does.

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/internal/admin"
	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
)

func exportOf(t *testing.T, e *env) []byte {
	t.Helper()
	doc, err := e.admin.Export(ctx)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	return doc
}

func nowOf(t *testing.T, e *env) time.Time {
	t.Helper()
	st, err := e.admin.Clock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now, err := time.Parse(time.RFC3339Nano, st.Now)
	if err != nil {
		t.Fatal(err)
	}
	return now
}

// sameExports fails unless the two exports hold the same state; backups
// whose id is not in known (made after the estate was exported, with ids
// each server draws) are compared by their cluster and creation time.
func sameExports(t *testing.T, what string, a, b []byte, known map[string]bool) {
	t.Helper()
	na, nb := renameNewBackups(t, a, known), renameNewBackups(t, b, known)
	var diffs []string
	diffJSON("export", na, nb, &diffs)
	if len(diffs) > 0 {
		t.Fatalf("%s: the exports differ (original -> imported):\n  %s", what, strings.Join(diffs, "\n  "))
	}
}

// renameNewBackups normalises an export (see normalizedSnapshot) after
// naming each backup not in known by its cluster, creation time and rank.
func renameNewBackups(t *testing.T, doc []byte, known map[string]bool) map[string]any {
	t.Helper()
	var snap map[string]any
	if err := json.Unmarshal(doc, &snap); err != nil {
		t.Fatal(err)
	}
	list, _ := snap["backups"].([]any)
	var fresh []map[string]any
	for _, v := range list {
		if m := v.(map[string]any); !known[m["backupId"].(string)] {
			fresh = append(fresh, m)
		}
	}
	slices.SortStableFunc(fresh, func(x, y map[string]any) int {
		return cmp.Or(strings.Compare(fmt.Sprint(x["clusterId"]), fmt.Sprint(y["clusterId"])), strings.Compare(fmt.Sprint(x["createdAt"]), fmt.Sprint(y["createdAt"])))
	})
	for i, m := range fresh {
		m["backupId"] = fmt.Sprintf("new-%s-%s-%d", m["clusterId"], m["createdAt"], i)
	}
	b, _ := json.Marshal(snap)
	return normalizedSnapshot(t, b)
}

func backupIDs(t *testing.T, doc []byte) map[string]bool {
	t.Helper()
	var snap struct {
		Backups []struct {
			BackupID string `json:"backupId"`
		} `json:"backups"`
	}
	if err := json.Unmarshal(doc, &snap); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, b := range snap.Backups {
		ids[b.BackupID] = true
	}
	return ids
}

// TestExportImportIsLossless builds the estate (estate_test.go: every
// piece of state that carries on), exports it, imports the export into a
// fresh server at the same time and exports again: the two exports are
// equal. Then both servers live through the same days, calls included,
// and stay equal: the imported estate carries on exactly as the original.
func TestExportImportIsLossless(t *testing.T) {
	t.Parallel()
	identities := newFastIdentities(t)
	src := newEnv(t, estateConfig(identities))
	es := buildEstate(t, src)
	first := exportOf(t, src)

	cfg := estateConfig(identities)
	cfg.Clock = clock.NewFrozen(nowOf(t, src))
	dst := newEnv(t, cfg)
	res, err := dst.admin.Import(ctx, bytes.NewReader(first))
	if err != nil {
		t.Fatalf("import the export: %v", err)
	}
	if res.Clusters != len(wantEstateStates) {
		t.Fatalf("import answered %+v, want %d clusters", res, len(wantEstateStates))
	}
	// An import keeps each cluster's history as it came: nothing changes.
	second := exportOf(t, dst)
	known := backupIDs(t, first)
	sameExports(t, "right after the import", first, second, known)
	if !bytes.Equal(first, second) {
		t.Fatal("the two exports hold the same state but are not the same bytes")
	}

	// The same life on both servers.
	steps := []struct {
		name string
		do   func(t *testing.T, e *env)
	}{
		{"half a step", advanceBy(estateStep / 2)},
		{"a step", advanceBy(estateStep)},
		{"activate the pending cluster", func(t *testing.T, e *env) {
			if _, err := e.admin.Activate(ctx, es.ids["pending-activation"], acctA, "us-east-1"); err != nil {
				t.Fatalf("activate: %v", err)
			}
		}},
		{"heal the degraded cluster", func(t *testing.T, e *env) {
			for _, h := range clusterState(t, e.sdk(acctA, "us-east-1", 1), es.ids["degraded"]).Hsms {
				if h.State == types.HsmStateDegraded {
					if _, err := e.admin.Heal(ctx, admin.HsmTarget{Account: acctA, Region: "us-east-1", ClusterID: es.ids["degraded"], HsmID: *h.HsmId}); err != nil {
						t.Fatalf("heal: %v", err)
					}
				}
			}
		}},
		{"roll the migrated cluster back, within its window", func(t *testing.T, e *env) {
			if _, err := e.sdk(acctA, "us-east-1", 1).ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: aws.String(es.ids["migrated"]), HsmType: aws.String("hsm1.medium")}); err != nil {
				t.Fatalf("ModifyCluster back to hsm1.medium: %v", err)
			}
		}},
		{"an hour", advanceBy(time.Hour)},
		{"three hours", advanceBy(3 * time.Hour)},
		{"a day", advanceBy(24 * time.Hour)},
		{"eight days", advanceBy(8 * 24 * time.Hour)},
	}
	for _, step := range steps {
		step.do(t, src)
		step.do(t, dst)
		sameExports(t, "after "+step.name, exportOf(t, src), exportOf(t, dst), known)
	}

	// And the estate did carry on: every in-progress state ended.
	c := dst.sdk(acctA, "us-east-1", 1)
	for role, want := range map[string]types.ClusterState{
		"creating": types.ClusterStateUninitialized, "initializing": types.ClusterStateInitialized,
		"rolling-back": types.ClusterStateActive, "migrating": types.ClusterStateDegraded,
		"pending-activation": types.ClusterStateActive, "degraded": types.ClusterStateActive,
		"hsm-creating": types.ClusterStateUninitialized, "migrated": types.ClusterStateActive,
	} {
		got := clusterState(t, c, es.ids[role])
		if got.State != want {
			t.Errorf("imported cluster %q is %s after the days, want %s", role, got.State, want)
		}
		if role == "rolling-back" || role == "migrated" {
			if aws.ToString(got.HsmType) != "hsm1.medium" {
				t.Errorf("imported cluster %q has HsmType %s after its rollback", role, aws.ToString(got.HsmType))
			}
		}
	}
	for _, role := range []string{"deleted", "deleting"} {
		out, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"clusterIds": {es.ids[role]}}})
		if err != nil || len(out.Clusters) != 0 {
			t.Errorf("imported cluster %q is still listed days after its deletion: %+v, %v", role, out.Clusters, err)
		}
	}
}

func advanceBy(d time.Duration) func(t *testing.T, e *env) {
	return func(t *testing.T, e *env) {
		t.Helper()
		if _, err := e.admin.Advance(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLegacyFilesImportAsTheirVersion2: a version 1 export (written by the
// code before version 2) and examples/seed-estate.json, imported, give the
// same state as their version 2 rewrites (testdata/v1_to_v2.py), through
// POST import and through --seed.
func TestLegacyFilesImportAsTheirVersion2(t *testing.T) {
	t.Parallel()
	const fixture = "../snapshot/testdata/v1-export.json"
	v1, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	var head struct {
		Time time.Time `json:"time"`
	}
	if err := json.Unmarshal(v1, &head); err != nil {
		t.Fatal(err)
	}
	exports := map[string][]byte{}
	for _, path := range []string{fixture, "../snapshot/testdata/v1-export.v2.json"} {
		doc, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, server.Config{Clock: clock.NewFrozen(head.Time)})
		if _, err := e.admin.Import(ctx, bytes.NewReader(doc)); err != nil {
			t.Fatalf("import %s: %v", path, err)
		}
		exports[path] = exportOf(t, e)
	}
	if !bytes.Equal(exports[fixture], exports["../snapshot/testdata/v1-export.v2.json"]) {
		sameExports(t, "v1-export.json and its version 2", exports[fixture], exports["../snapshot/testdata/v1-export.v2.json"], nil)
		t.Fatal("the exports hold the same state but are not the same bytes")
	}

	// Seeds: what import makes anew (keys, hence the CSR) differs.
	seeded := map[string]map[string]any{}
	for _, path := range []string{seedFile, "../../examples/seed-estate.v2.json"} {
		e := newEnv(t, server.Config{SeedFile: path})
		seeded[path] = withoutMadeAnew(t, exportOf(t, e))
	}
	var diffs []string
	diffJSON("export", seeded[seedFile], seeded["../../examples/seed-estate.v2.json"], &diffs)
	if len(diffs) > 0 {
		t.Fatalf("seed-estate.json and seed-estate.v2.json seed different estates:\n  %s", strings.Join(diffs, "\n  "))
	}
}

// withoutMadeAnew normalises an export without what a seed without keys
// gets anew at each import: the HSMs' identities and the CSRs they sign.
func withoutMadeAnew(t *testing.T, doc []byte) map[string]any {
	t.Helper()
	snap := normalizedSnapshot(t, doc)
	for _, v := range snap["clusters"].(map[string]any) {
		c := v.(map[string]any)
		delete(c, "clusterCsr")
		hsms, _ := c["hsms"].([]any)
		for _, h := range hsms {
			delete(h.(map[string]any), "identity")
		}
	}
	return snap
}
