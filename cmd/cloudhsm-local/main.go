// Command cloudhsm-local runs the AWS CloudHSM v2 control plane emulator:
// flags and environment to configuration, signals, shutdown. Its
// subcommands: `cloudhsm-local admin <command>` calls the admin API of a
// running server (admin.go, admin_ls.go); `cloudhsm-local copy-estate`
// copies an estate between a data directory and a PostgreSQL database
// (copy.go); a hidden one runs the binary as the server's key helper
// process (keyhelper.go).
//
// The server command is two steps: parseConfig turns the flags and the
// CLOUDHSM_LOCAL_* environment into a config, without side effects; serve
// starts the server with it, prints the banner, and shuts down on a signal.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// DefaultListen is the default listen address (not LocalStack's 4566 nor moto's 5000).
const DefaultListen = "127.0.0.1:4599"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr, exitWithGoRun); err != nil {
		fmt.Fprintln(os.Stderr, "cloudhsm-local:", err)
		os.Exit(1)
	}
}

// run is the whole command: a subcommand, or the server. watch, when not
// nil, may stop the server when its parent process ends (main passes
// exitWithGoRun; tests, which run it inside the test process, nil).
func run(args []string, stdout, stderr io.Writer, watch parentWatch) error {
	if len(args) > 0 && args[0] == "admin" {
		return runAdmin(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == keyHelperCommand {
		return runKeyHelper()
	}
	if len(args) > 0 && args[0] == copyEstateCommand {
		return runCopyEstate(args[1:], stdout, stderr)
	}
	cfg, warnings, err := parseConfig(args, os.Environ(), stderr)
	// Plain lines before anything is logged, whatever the log level: a
	// mistyped variable is a setting that did not take effect.
	for _, w := range warnings {
		fmt.Fprintln(stderr, "cloudhsm-local: warning:", w)
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	return refusal(serve(cfg, stdout, stderr, watch))
}

// refusal is err as a person should read it: a damaged state.db's refusal
// names the file and says what to do, and the layers it came through
// (loading the state, opening the store) would only repeat the file name.
func refusal(err error) error {
	var corrupt *store.CorruptError
	if errors.As(err, &corrupt) {
		return corrupt
	}
	return err
}
