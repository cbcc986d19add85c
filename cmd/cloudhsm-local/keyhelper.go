package main

import (
	"log/slog"
	"os"

	"github.com/cloudhsm-local/cloudhsm-local/internal/pki"
)

// keyHelperCommand is the hidden subcommand that runs this executable as the
// server's key helper process (see pki.IdentityProcess).
const keyHelperCommand = "__keygen-helper"

// runKeyHelper makes HSM identities (keys and certificates) for the server
// that started it, at the lowest CPU priority, until stdin ends.
func runKeyHelper() error {
	if err := pki.LowerPriority(); err != nil {
		return err
	}
	return pki.ServeIdentities(os.Stdin, os.Stdout)
}

// keyHelper returns the command line of the key helper for --keygen mode, or
// nil to generate keys in the server (mode inline, or when this executable
// cannot be found).
func keyHelper(mode string, log *slog.Logger) []string {
	if mode != "process" {
		return nil
	}
	// On Linux /proc/self/exe is this very binary even if the file was
	// replaced since it started (a rebuild, an upgrade): the helper must
	// speak the same protocol.
	if _, err := os.Stat("/proc/self/exe"); err == nil {
		return []string{"/proc/self/exe", keyHelperCommand}
	}
	exe, err := os.Executable()
	if err != nil {
		log.Warn("HSM keys and certificates will be made in the server process: cannot find this executable", "err", err)
		return nil
	}
	return []string{exe, keyHelperCommand}
}
