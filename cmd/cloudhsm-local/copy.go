package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store/postgres"
)

// copyEstateCommand is `cloudhsm-local copy-estate`: it copies an estate
// between a data directory (the embedded store) and a PostgreSQL
// database, or between two of either, losing nothing.
const copyEstateCommand = "copy-estate"

// runCopyEstate runs `cloudhsm-local copy-estate --from SRC --to DST`.
func runCopyEstate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cloudhsm-local "+copyEstateCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var from, to string
	var timeout time.Duration
	fs.StringVar(&from, "from", "", "the estate to copy: a data directory, or a postgres:// URL")
	fs.StringVar(&to, "to", "", "where to copy it: a new (or empty) data directory, or a postgres:// URL of an empty database")
	fs.DurationVar(&timeout, "timeout", 30*time.Minute, "time allowed for the copy")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: cloudhsm-local %s --from <data-dir|postgres-url> --to <data-dir|postgres-url>\n\n"+
			"Copies every record of an estate (clusters, backups and their due times, learned subnets,\n"+
			"the simulated roots, the token secret, the clock) into an empty store, in one transaction.\n"+
			"Stop every server of both estates first.\n\nFlags:\n", copyEstateCommand)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", copyEstateCommand, fs.Arg(0))
	}
	if from == "" || to == "" {
		return fmt.Errorf("%s: give both --from and --to (a data directory or a postgres:// URL)", copyEstateCommand)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	src, err := openEstate(ctx, from, false)
	if err != nil {
		return fmt.Errorf("%s: --from: %w", copyEstateCommand, err)
	}
	defer src.Close()
	dst, err := openEstate(ctx, to, true)
	if err != nil {
		return fmt.Errorf("%s: --to: %w", copyEstateCommand, err)
	}
	n, err := postgres.Copy(ctx, src, dst)
	if cerr := dst.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", copyEstateCommand, err)
	}
	fmt.Fprintf(stdout, "copied %d records from %s to %s\n", n, describeEstate(from), describeEstate(to))
	return nil
}

// isDatabaseURL reports whether where names a PostgreSQL database.
func isDatabaseURL(where string) bool {
	return strings.HasPrefix(where, "postgres://") || strings.HasPrefix(where, "postgresql://")
}

// describeEstate names where without a password.
func describeEstate(where string) string {
	if isDatabaseURL(where) {
		return postgres.Redact(where)
	}
	return where
}

// openEstate opens the store at where: a database, or a data directory's
// embedded store (which must exist unless create is set).
func openEstate(ctx context.Context, where string, create bool) (store.Store, error) {
	if isDatabaseURL(where) {
		return postgres.Open(ctx, where, postgres.Options{})
	}
	path := server.StateFile(where)
	if !create {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("%s holds no estate (%w)", where, err)
		}
	}
	b, err := store.OpenBolt(path, store.BoltOptions{})
	if errors.Is(err, store.ErrInUse) {
		return nil, fmt.Errorf("%w: stop the server that uses %s first", err, where)
	}
	return b, err
}
