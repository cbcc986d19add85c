package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit/pgtest"
)

// buildBench builds the cloudhsm-local binary and chlbench into dir.
func buildBench(ctx context.Context, t *testing.T, dir string) (bin, chlbench string) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	build := func(out, pkg string) string {
		path := filepath.Join(dir, out)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", path, pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
		return path
	}
	return build("cloudhsm-local", "./cmd/cloudhsm-local"), build("chlbench", "./bench/cmd/chlbench")
}

// smoke builds the binaries and runs chlbench --smoke with args, failing t
// if chlbench fails; it returns chlbench's output.
func smoke(t *testing.T, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, chlbench := buildBench(ctx, t, dir)
	args = append([]string{"--smoke", "--bin", bin, "--work", filepath.Join(dir, "work")}, args...)
	out, err := exec.CommandContext(ctx, chlbench, args...).CombinedOutput()
	t.Logf("chlbench %v:\n%s", args, out)
	if err != nil {
		t.Fatalf("chlbench --smoke failed: %v", err)
	}
	return string(out)
}

// TestSmoke builds the cloudhsm-local binary and chlbench, and runs every
// scenario of chlbench briefly with tiny sizes (--smoke). It fails only when a
// scenario fails (an error, a lost write, a wrong page), never on a speed
// figure: speed targets are measured by chlbench and reported, not asserted.
// The shared scenario has no --pg-url here (its targets are n/a);
// TestSmokeShared runs it.
func TestSmoke(t *testing.T) {
	smoke(t)
}

// TestSmokeShared runs chlbench's shared scenario briefly (--smoke) on the
// test binary's private PostgreSQL, after the startup scenario whose
// estate it copies: two replicas read, two replicas write, and a replica
// starts on the copied estate. As TestSmoke, it fails only when the
// scenario fails, or does not run; and the start-up targets, which are
// about 100,000 clusters, must be n/a on a smoke's few.
func TestSmokeShared(t *testing.T) {
	pgURL := pgtest.Shared(t).NewDatabase(t)
	out := smoke(t, "--scenarios", "startup,shared", "--pg-url", pgURL)
	for _, want := range []string{"shared-read", "shared-write", "shared-startup"} {
		if !regexp.MustCompile(`(?m)^` + want + ` +\w+=`).MatchString(out) {
			t.Errorf("chlbench printed no %s line: the shared scenario did not run it", want)
		}
	}
	for _, target := range []string{"shared_startup_100k", "shared_rss_per_cluster"} {
		if !regexp.MustCompile(`(?m)^target ` + target + ` +value=n/a .* n/a \(only \d+ clusters\)$`).MatchString(out) {
			t.Errorf("target %s is not n/a on a smoke's few clusters", target)
		}
	}
}
