package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
)

// parseConfig turns flags and environment into a config and does nothing
// else: no directory is made, no file is read, nothing is printed.
func TestParseConfigHasNoSideEffects(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "not-yet")
	creds := filepath.Join(t.TempDir(), "missing-credentials.json")
	env := []string{
		"CLOUDHSM_LOCAL_PROFILE=realistic",
		"CLOUDHSM_LOCAL_QUOTA_HSMS=6",
		"CLOUDHSM_LOCAL_ACTIVATION=manual",
		"PATH=/usr/bin",
	}
	var stderr strings.Builder
	c, _, err := parseConfig([]string{"--data-dir", dir, "--activation", "auto", "--auth", "strict", "--credentials", creds, "--deleted-retention", "2h", "--ec2-endpoint", "http://127.0.0.1:5000"}, env, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if stderr.Len() != 0 {
		t.Errorf("parseConfig wrote %q", stderr.String())
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("parseConfig touched the data directory: %v", err)
	}
	if c.dataDir != dir || c.domain.Delays != cloudhsm.RealisticDelays() || c.domain.HsmsPerRegion != 6 || c.domain.DeletedRetention != 2*time.Hour {
		t.Errorf("config = %+v", c)
	}
	if c.domain.ManualActivation {
		t.Error("--activation auto did not override CLOUDHSM_LOCAL_ACTIVATION=manual")
	}
	if c.ec2 == nil || c.ec2.Endpoint != "http://127.0.0.1:5000" || c.ec2.AccessKeyID != "test" {
		t.Errorf("ec2 = %+v", c.ec2)
	}
	// The missing credentials file is serve's business, not parseConfig's.
	if c.auth != "strict" || c.credentials != creds {
		t.Errorf("auth %q, credentials %q", c.auth, c.credentials)
	}
	if _, _, err := parseConfig([]string{"--help"}, nil, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v, want flag.ErrHelp", err)
	}
}
