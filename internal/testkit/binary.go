package testkit

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BuildServerBinary builds ./cmd/cloudhsm-local of the module the test runs
// in as dir/cloudhsm-local and returns its path. env is added to the
// environment of go build (e.g. "CGO_ENABLED=0").
func BuildServerBinary(dir string, env ...string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside the module")
	}
	bin := filepath.Join(dir, "cloudhsm-local")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/cloudhsm-local")
	cmd.Dir = filepath.Dir(gomod)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/cloudhsm-local: %v\n%s", err, b)
	}
	return bin, nil
}
