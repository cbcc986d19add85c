package main

import (
	"fmt"
	"log/slog"
	"os"
	"testing"

	"github.com/cloudhsm-local/cloudhsm-local/internal/pki"
)

// TestMain lets the test binary stand in for the real one when a server
// under test starts its key helper (os.Executable is this binary then).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == keyHelperCommand {
		if err := runKeyHelper(); err != nil {
			fmt.Fprintln(os.Stderr, "key helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestKeyHelper checks that --keygen process names a command line that
// serves keys through the hidden subcommand, and inline names none.
func TestKeyHelper(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if h := keyHelper("inline", log); h != nil {
		t.Errorf("inline mode: helper %q", h)
	}
	h := keyHelper("process", log)
	if len(h) != 2 || h[1] != keyHelperCommand {
		t.Fatalf("process mode: helper %q", h)
	}
	p := pki.StartKeyProcess(log, 2, h[0], h[1:]...)
	defer p.Close()
	for range 3 {
		k, err := p.Get()
		if err != nil || k.N.BitLen() != 2048 {
			t.Fatalf("Get: %v", err)
		}
	}
	if err := p.Err(); err != nil {
		t.Fatalf("the helper failed, keys came from the fallback: %v", err)
	}
}

func TestKeygenFlag(t *testing.T) {
	clearEnv(t)
	if _, _, err := runCmd(t, "--in-memory", "--keygen", "elsewhere"); err == nil {
		t.Error("--keygen elsewhere accepted")
	}
}
