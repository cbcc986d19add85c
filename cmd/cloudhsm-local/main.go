// Command cloudhsm-local runs the AWS CloudHSM v2 control plane emulator:
// flags and environment to configuration, signals, and nothing else.
// `cloudhsm-local admin <command>` calls the admin API of a running server.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/gctune"
	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
	"github.com/cloudhsm-local/cloudhsm-local/internal/sigv4"
)

// DefaultListen is the default listen address (not LocalStack's 4566 nor moto's 5000).
const DefaultListen = "127.0.0.1:4599"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "cloudhsm-local:", err)
		os.Exit(1)
	}
}

type options struct {
	listen, dataDir, topology, profile, activation, account, logLevel string
	inMemory                                                          bool
	deletedRetention                                                  time.Duration
	quotaClusters, quotaHsms                                          int
	readHeaderTimeout, readTimeout, writeTimeout                      time.Duration
	maxConns                                                          int
	adminToken, seed                                                  string
	pprof                                                             bool
	auth, credentials                                                 string
	ec2Endpoint, ec2AccessKey, ec2SecretKey                           string
	ec2CacheTTL                                                       time.Duration
	keygen                                                            string
	gcFloorMB                                                         int
}

func defaultDataDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "cloudhsm-local")
	}
	return ".cloudhsm-local"
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "admin" {
		return runAdmin(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == keyHelperCommand {
		return runKeyHelper()
	}
	fs := flag.NewFlagSet("cloudhsm-local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.listen, "listen", DefaultListen, "address to listen on")
	fs.StringVar(&o.dataDir, "data-dir", defaultDataDir(), "directory of the embedded store (created on first run)")
	fs.BoolVar(&o.inMemory, "in-memory", false, "keep all state in memory; write no files")
	fs.StringVar(&o.topology, "topology", "", "JSON file declaring VPCs and subnets (default: learn subnets on first sight)")
	fs.StringVar(&o.profile, "profile", "fast", "timing profile: fast (in-progress states last 500ms) or realistic (AWS-like minutes)")
	fs.StringVar(&o.activation, "activation", "auto", "cluster activation: auto (INITIALIZED becomes ACTIVE after a delay) or manual (admin API)")
	fs.StringVar(&o.account, "default-account", server.DefaultAccount, "account of callers whose access key id is not a 12-digit account id")
	fs.DurationVar(&o.deletedRetention, "deleted-retention", time.Hour, "how long DELETED clusters and backups stay visible")
	fs.IntVar(&o.quotaClusters, "quota-clusters", 0, "clusters per account and region (AWS default 4); 0 disables")
	fs.IntVar(&o.quotaHsms, "quota-hsms", 0, "HSMs per account and region (AWS default 6); 0 disables")
	fs.StringVar(&o.keygen, "keygen", "process", "where HSM keys and certificates are made: process (a helper process at the lowest CPU priority, so that other requests do not wait behind key generation; a CreateHsm the helper has not served within 2 s is served in the server) or inline (in the server)")
	fs.IntVar(&o.gcFloorMB, "gc-heap-floor-mb", 16, "the garbage collector lets the heap grow to at least this many MB before it runs (fewer collections under load; 0: Go's default pacing; ignored when GOGC or GOMEMLIMIT is set)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.DurationVar(&o.readHeaderTimeout, "read-header-timeout", 10*time.Second, "time allowed to read request headers")
	fs.DurationVar(&o.readTimeout, "read-timeout", 30*time.Second, "time allowed to read a whole request")
	fs.DurationVar(&o.writeTimeout, "write-timeout", 30*time.Second, "time allowed to write a response")
	fs.IntVar(&o.maxConns, "max-connections", 1024, "maximum concurrent connections")
	fs.StringVar(&o.adminToken, "admin-token", "", "bearer token required by the admin API from every caller (default: none, and only loopback callers are allowed)")
	fs.StringVar(&o.seed, "seed", "", "snapshot JSON file (the admin API's export format) imported at startup into an empty server")
	fs.BoolVar(&o.pprof, "pprof", false, "serve net/http/pprof under /debug/pprof/ (admin access rules apply)")
	fs.StringVar(&o.auth, "auth", "permissive", "authentication: permissive (any signature; account from a 12-digit access key id) or strict (SigV4 verified against --credentials)")
	fs.StringVar(&o.credentials, "credentials", "", `JSON file of credentials for --auth strict: {"credentials":[{"accessKeyId":"...","secretAccessKey":"...","account":"111122223333"}]}`)
	fs.StringVar(&o.ec2Endpoint, "ec2-endpoint", "", "look subnets up with EC2 DescribeSubnets at this endpoint (moto, LocalStack) instead of learning them")
	fs.StringVar(&o.ec2AccessKey, "ec2-access-key-id", "test", "access key id that signs calls to --ec2-endpoint")
	fs.StringVar(&o.ec2SecretKey, "ec2-secret-access-key", "test", "secret access key that signs calls to --ec2-endpoint")
	fs.DurationVar(&o.ec2CacheTTL, "ec2-cache-ttl", 30*time.Second, "how long subnets looked up in EC2 are cached")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: cloudhsm-local [flags]\n       cloudhsm-local admin <command> [flags]   (call a running server's admin API; see admin --help)\n\nThe AWS CloudHSM v2 control plane on one machine.\nEvery flag can also be set with the environment variable CLOUDHSM_LOCAL_<FLAG> (e.g. CLOUDHSM_LOCAL_DATA_DIR).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	// Environment first, flags override.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "CLOUDHSM_LOCAL_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if err := f.Value.Set(v); err != nil && envErr == nil {
				envErr = fmt.Errorf("%s=%q: %w", name, v, err)
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		// Parsing stops at the first non-flag: `--in-memory false --listen
		// X` would otherwise ignore "false" and every flag after it.
		return fmt.Errorf("unexpected argument %q (flags after it were not read; write a boolean flag as --flag=false)", fs.Arg(0))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	// One log line per request: buffered, so a line does not cost a write
	// system call, and flushed ten times a second and at exit.
	logOut := server.NewLogWriter(stderr, 100*time.Millisecond)
	defer logOut.Close()
	logger := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: level}))

	dc := cloudhsm.DefaultConfig()
	switch o.profile {
	case "fast":
	case "realistic":
		dc.Delays = cloudhsm.RealisticDelays()
	default:
		return fmt.Errorf("--profile must be fast or realistic, got %q", o.profile)
	}
	switch o.activation {
	case "auto":
	case "manual":
		dc.ManualActivation = true
	default:
		return fmt.Errorf("--activation must be auto or manual, got %q", o.activation)
	}
	if o.gcFloorMB < 0 {
		return fmt.Errorf("--gc-heap-floor-mb must be 0 or more, got %d", o.gcFloorMB)
	}
	if o.keygen != "process" && o.keygen != "inline" {
		return fmt.Errorf("--keygen must be process or inline, got %q", o.keygen)
	}
	dc.DeletedRetention = o.deletedRetention
	dc.ClustersPerRegion = o.quotaClusters
	dc.HsmsPerRegion = o.quotaHsms

	var creds sigv4.Credentials
	switch o.auth {
	case "permissive":
		if o.credentials != "" {
			return errors.New("--credentials is used only with --auth strict")
		}
	case "strict":
		if o.credentials == "" {
			return errors.New("--auth strict needs --credentials FILE")
		}
		c, err := sigv4.LoadCredentialsFile(o.credentials)
		if err != nil {
			return fmt.Errorf("--credentials: %w", err)
		}
		creds = c
		if o.adminToken == "" {
			// Strict mode never leaves the admin API open: without a token
			// given, one is made and printed.
			o.adminToken = randomToken()
			fmt.Fprintf(stdout, "cloudhsm-local: --auth strict without --admin-token: the admin API token is %s\n", o.adminToken)
		}
	default:
		return fmt.Errorf("--auth must be permissive or strict, got %q", o.auth)
	}
	var ec2 *network.EC2Config
	if o.ec2Endpoint != "" {
		ec2 = &network.EC2Config{Endpoint: o.ec2Endpoint, AccessKeyID: o.ec2AccessKey, SecretAccessKey: o.ec2SecretKey, CacheTTL: o.ec2CacheTTL}
	}

	// Reading the store allocates what stays live: no collections until
	// it is read (up to 1 GB of heap).
	loaded := gctune.Loading(1 << 30)
	srv, err := server.New(server.Config{
		Credentials:    creds,
		EC2:            ec2,
		DataDir:        o.dataDir,
		InMemory:       o.inMemory,
		TopologyFile:   o.topology,
		DefaultAccount: o.account,
		Domain:         dc,
		Logger:         logger,
		AdminToken:     o.adminToken,
		SeedFile:       o.seed,
		Pprof:          o.pprof,
		KeyHelper:      keyHelper(o.keygen, logger),
	})
	loaded()
	if err != nil {
		return err
	}
	defer srv.Close()

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	ln = server.LimitListener(ln, o.maxConns)
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: o.readHeaderTimeout,
		ReadTimeout:       o.readTimeout,
		WriteTimeout:      o.writeTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	endpoint := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "cloudhsm-local listening on %s\n", endpoint)
	fmt.Fprintf(stdout, "  data: %s\n", srv.Describe())
	if srv.Strict() {
		fmt.Fprintf(stdout, "  auth: strict (SigV4 signatures are verified against %s; the account is the key's)\n", o.credentials)
	} else {
		fmt.Fprintf(stdout, "  auth: permissive (any signature is accepted; the account comes from a 12-digit access key id, else %s)\n", o.account)
	}
	switch {
	case o.ec2Endpoint != "":
		fmt.Fprintf(stdout, "  subnets: looked up in EC2 at %s\n", o.ec2Endpoint)
	case o.topology != "":
		fmt.Fprintf(stdout, "  subnets: declared in %s\n", o.topology)
	default:
		fmt.Fprintf(stdout, "  subnets: learned on first sight\n")
	}
	fmt.Fprintf(stdout, "  point a client at it:\n")
	fmt.Fprintf(stdout, "    aws cloudhsmv2 describe-clusters --endpoint-url %s --region us-east-1\n", endpoint)
	fmt.Fprintf(stdout, "    export AWS_ENDPOINT_URL_CLOUDHSM_V2=%s\n", endpoint)
	adminAccess := "loopback callers only"
	if o.adminToken != "" {
		adminAccess = "bearer token required"
	}
	fmt.Fprintf(stdout, "  admin API: %s/_cloudhsm-local/health (%s)\n", endpoint, adminAccess)
	fmt.Fprintf(stdout, "  metrics: %s/metrics\n", endpoint)
	if o.pprof {
		fmt.Fprintf(stdout, "  pprof: %s/debug/pprof/\n", endpoint)
	}
	if res := srv.Seeded(); res != nil {
		fmt.Fprintf(stdout, "  seed: %s (%d clusters, %d HSMs, %d backups)\n", o.seed, res.Clusters, res.Hsms, res.Backups)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	// Hand the memory that loading the store used and no longer needs back
	// to the system, once serving has started; from then on the collector
	// runs with a heap floor.
	go debug.FreeOSMemory()
	defer gctune.Floor(uint64(o.gcFloorMB) << 20).Stop()
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

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
