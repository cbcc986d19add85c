package main

import (
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// bannerOf starts the server the flags describe (without a listener) and
// returns its banner.
func bannerOf(t *testing.T, args ...string) string {
	t.Helper()
	cfg, _, err := parseConfig(args, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := startServer(&cfg, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var b strings.Builder
	printBanner(&b, &cfg, srv, "http://127.0.0.1:4599")
	return b.String()
}

// The banner says what a newcomer needs: what the store held or the seed
// imported, the timing profile, the activation mode and the quotas.
func TestBanner(t *testing.T) {
	const seed = "../../examples/seed-estate.json"
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"defaults", []string{"--in-memory"}, []string{
			"cloudhsm-local listening on http://127.0.0.1:4599\n",
			"\n  data: in memory (nothing is written to disk)\n",
			"\n  loaded: nothing (the estate starts empty)\n",
			"\n  timing: fast (every in-progress state lasts 500ms)\n",
			"\n  activation: auto (an INITIALIZED cluster becomes ACTIVE after 500ms)\n",
			"\n  quotas: none (AWS's defaults are 4 clusters and 6 HSMs per account and region: --quota-clusters 4 --quota-hsms 6)\n",
			"\n  auth: permissive",
			"\n  subnets: learned on first sight",
			"\n  metrics: http://127.0.0.1:4599/metrics\n",
		}},
		{"seed into an empty store", []string{"--data-dir", dir, "--seed", seed}, []string{
			"\n  data: " + filepath.Join(dir, "state.db") + "\n",
			"\n  loaded: from the seed " + seed + " (the store was empty): 4 clusters (",
			"), 5 HSMs, 6 backups (",
		}},
		{"the same store again", []string{"--data-dir", dir, "--seed", seed, "--profile", "realistic", "--activation", "manual", "--quota-clusters", "4", "--quota-hsms", "6"}, []string{
			"\n  loaded: from the store: 4 clusters (",
			"\n  seed: " + seed + " not imported: a seed only fills an empty store\n",
			"\n  timing: realistic (AWS-like): cluster create 3m, initialize 2m, activate 1m30s, delete 2m;\n          HSM create 5m, delete 2m; backup 2m, copy to a region 5m; HsmType change 30m per HSM\n",
			"\n  activation: manual (an INITIALIZED cluster stays so until `cloudhsm-local admin activate CLUSTER_ID`)\n",
			"\n  quotas: 4 clusters and 6 HSMs per account and region\n",
		}},
		{"one quota", []string{"--in-memory", "--quota-hsms", "2"}, []string{
			"\n  quotas: any number of clusters and 2 HSMs per account and region\n",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			banner := bannerOf(t, tc.args...)
			for _, w := range tc.want {
				if !strings.Contains(banner, w) {
					t.Errorf("banner lacks %q:\n%s", w, banner)
				}
			}
		})
	}
}
