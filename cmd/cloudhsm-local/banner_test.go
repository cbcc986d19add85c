package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
	"github.com/cloudhsm-local/cloudhsm-local/internal/sigv4"
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

// TestBannerClock: the banner says where the kept clock stands, and in
// strict mode warns when signatures made with real time would be refused.
func TestBannerClock(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds.json")
	if err := os.WriteFile(creds, []byte(`{"credentials":[{"accessKeyId":"AKIDEXAMPLE","secretAccessKey":"secret","account":"111122223333"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		strict  bool
		advance time.Duration
		want    []string
		notWant []string
	}{
		{"real time", false, 0, []string{"clock: real time"}, []string{"warning"}},
		{"advanced, permissive", false, 36 * time.Hour, []string{"real time +36h0m0s, kept with the estate"}, []string{"warning"}},
		{"advanced, strict", true, 36 * time.Hour, []string{"real time +36h0m0s", "warning: the clock is 36h0m0s off real time"}, nil},
		{"a little, strict", true, 10 * time.Minute, []string{"real time +10m0s"}, []string{"warning"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scfg := server.Config{InMemory: true}
			if tc.strict {
				c, err := sigv4.LoadCredentialsFile(creds)
				if err != nil {
					t.Fatal(err)
				}
				scfg.Credentials = c
			}
			srv, err := server.New(scfg)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			if tc.advance > 0 {
				if _, err := srv.Service().AdvanceClock(tc.advance); err != nil {
					t.Fatal(err)
				}
			}
			var b strings.Builder
			printClock(&b, srv)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("banner %q lacks %q", b.String(), w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(b.String(), w) {
					t.Errorf("banner %q has %q", b.String(), w)
				}
			}
		})
	}
}
