package main

import (
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

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
// makes HSM identities through the hidden subcommand, and inline names none.
func TestKeyHelper(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if h := keyHelper("inline", log); h != nil {
		t.Errorf("inline mode: helper %q", h)
	}
	h := keyHelper("process", log)
	if len(h) != 2 || h[1] != keyHelperCommand {
		t.Fatalf("process mode: helper %q", h)
	}
	p := pki.StartIdentityProcess(log, h[0], h[1:]...)
	defer p.Close()
	auth, err := pki.NewAuthority(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id, csr, err := p.NewIdentity(auth, pki.IdentityRequest{HsmID: "hsm-cmdhelper", Now: time.Now(), Partition: 1, CSR: true})
	if err != nil {
		t.Fatal(err)
	}
	if id.HsmCertificate == "" || csr == "" {
		t.Fatalf("empty identity or CSR: %+v %q", id, csr)
	}
	if err := p.Err(); err != nil {
		t.Fatalf("the helper failed, the identity came from the fallback: %v", err)
	}
}

func TestKeygenFlag(t *testing.T) {
	clearEnv(t)
	if _, _, err := runCmd(t, "--in-memory", "--keygen", "elsewhere"); err == nil {
		t.Error("--keygen elsewhere accepted")
	}
}
