package testkit

import (
	"os"
	"os/exec"
	"testing"
)

// MissingTool ends a test whose external tool (moto_server, openssl, the
// AWS CLI, node, terraform, ...) is not installed: under CI=true the test
// fails, as CI must never pass without running it; elsewhere it is skipped,
// loudly. msg says what is missing and what goes untested.
func MissingTool(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPED: " + msg)
}

// LookPath returns the path of the program name found on PATH; when it is
// not there the test ends through MissingTool. untested says what goes
// untested without it.
func LookPath(t testing.TB, name, untested string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		MissingTool(t, name+" is not on PATH: "+untested)
	}
	return path
}
