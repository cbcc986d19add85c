package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestSmoke builds the cloudhsm-local binary and chlbench, and runs every
// scenario of chlbench briefly with tiny sizes (--smoke). It fails only when a
// scenario fails (an error, a lost write, a wrong page), never on a speed
// figure: speed targets are measured by chlbench and reported, not asserted.
func TestSmoke(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := func(out, pkg string) {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, out), pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	build("cloudhsm-local", "./cmd/cloudhsm-local")
	build("chlbench", "./bench/cmd/chlbench")
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "chlbench"), "--smoke",
		"--bin", filepath.Join(dir, "cloudhsm-local"), "--work", filepath.Join(dir, "work"))
	out, err := cmd.CombinedOutput()
	t.Logf("chlbench --smoke:\n%s", out)
	if err != nil {
		t.Fatalf("chlbench --smoke failed: %v", err)
	}
}
