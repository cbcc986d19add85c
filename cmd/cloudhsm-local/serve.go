package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/gctune"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
	"github.com/cloudhsm-local/cloudhsm-local/internal/sigv4"
)

// parentWatch arranges for stop to be called when the process that
// started this one ends, if it should (see exitWithGoRun); release ends
// the arrangement.
type parentWatch func(stop func()) (release func())

// serve runs the server cfg describes until SIGINT or SIGTERM (or until
// watch calls its stop: the same path), then lets in-flight requests
// finish and closes the store.
func serve(cfg config, stdout, stderr io.Writer, watch parentWatch) error {
	// From the start: a signal while the store opens still shuts down
	// cleanly once it is open.
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	if watch != nil {
		defer watch(stop)()
	}
	// One log line per request: buffered, so a line does not cost a write
	// system call, and flushed ten times a second and at exit.
	logOut := server.NewLogWriter(stderr, 100*time.Millisecond)
	defer logOut.Close()
	logger := slog.New(newLogHandler(logOut, cfg.logFormat, cfg.level))

	srv, err := startServer(&cfg, logger, stdout)
	if err != nil {
		return err
	}
	defer srv.Close()

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	ln = server.LimitListener(ln, cfg.maxConns)
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: cfg.readHeaderTimeout,
		ReadTimeout:       cfg.readTimeout,
		WriteTimeout:      cfg.writeTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	printBanner(stdout, &cfg, srv, "http://"+ln.Addr().String())

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	// Hand the memory that loading the store used and no longer needs back
	// to the system, once serving has started; from then on the collector
	// runs with a heap floor.
	go debug.FreeOSMemory()
	defer gctune.Floor(uint64(cfg.gcFloorMB) << 20).Stop()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// startServer loads the credentials of strict mode (making up an admin
// token if none was given, printed on stdout) and opens the server.
func startServer(cfg *config, logger *slog.Logger, stdout io.Writer) (*server.Server, error) {
	var creds sigv4.Credentials
	if cfg.auth == "strict" {
		c, err := sigv4.LoadCredentialsFile(cfg.credentials)
		if err != nil {
			return nil, fmt.Errorf("--credentials: %w", err)
		}
		creds = c
		if cfg.adminToken == "" {
			// Strict mode never leaves the admin API open: without a token
			// given, one is made and printed.
			cfg.adminToken = randomToken()
			fmt.Fprintf(stdout, "cloudhsm-local: --auth strict without --admin-token: the admin API token is %s\n", cfg.adminToken)
		}
	}
	// Reading the store allocates what stays live: no collections until
	// it is read (up to 1 GB of heap).
	loaded := gctune.Loading(1 << 30)
	defer loaded()
	return server.New(server.Config{
		LocalClock:     localClock(cfg.localClockOffset),
		Credentials:    creds,
		EC2:            cfg.ec2,
		DataDir:        cfg.dataDir,
		InMemory:       cfg.inMemory,
		DatabaseURL:    cfg.databaseURL,
		RequestLog:     cfg.requestLog,
		ConsoleStreams: cfg.consoleStreams,
		AllowedHosts:   splitHosts(cfg.allowedHosts),
		TopologyFile:   cfg.topology,
		DefaultAccount: cfg.account,
		Domain:         cfg.domain,
		Logger:         logger,
		AdminToken:     cfg.adminToken,
		SeedFile:       cfg.seed,
		Pprof:          cfg.pprof,
		KeyHelper:      keyHelper(cfg.keygen, logger),
	})
}

// splitHosts reads --allowed-hosts: comma-separated names, blanks dropped.
func splitHosts(s string) []string {
	var out []string
	for _, h := range strings.Split(s, ",") {
		if h = strings.TrimSpace(h); h != "" {
			out = append(out, h)
		}
	}
	return out
}

// localClock is this process's clock moved by offset (envTestClockOffset),
// or nil, the real clock, for none.
func localClock(offset time.Duration) func() time.Time {
	if offset == 0 {
		return nil
	}
	return func() time.Time { return time.Now().Add(offset) }
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
