package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
)

// envPrefix starts the name of the environment variable of every flag:
// --data-dir is CLOUDHSM_LOCAL_DATA_DIR.
const envPrefix = "CLOUDHSM_LOCAL_"

// config is what the server command was asked to do: its flags and
// CLOUDHSM_LOCAL_* environment, parsed and checked. Making one has no side
// effect (nothing is opened, created, started or printed); serve acts on it.
type config struct {
	// As given on the command line or in the environment.
	listen, dataDir, topology, profile, activation, account string
	inMemory                                                bool
	databaseURL                                             string
	requestLog, consoleStreams                              int
	allowedHosts                                            string
	deletedRetention                                        time.Duration
	quotaClusters, quotaHsms                                int
	logLevel, logFormat                                     string
	readHeaderTimeout, readTimeout, writeTimeout            time.Duration
	maxConns                                                int
	adminToken, seed                                        string
	pprof                                                   bool
	auth, credentials                                       string
	ec2Endpoint, ec2AccessKey, ec2SecretKey                 string
	ec2CacheTTL                                             time.Duration
	keygen                                                  string
	gcFloorMB                                               int

	// Set by the test suite for the processes it starts (envTestPrefix).
	localClockOffset time.Duration

	// Derived by check.
	domain cloudhsm.Config
	level  slog.Level
	ec2    *network.EC2Config
}

func defaultDataDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "cloudhsm-local")
	}
	return ".cloudhsm-local"
}

// parseConfig reads the server command's flags from args and their
// CLOUDHSM_LOCAL_* variables from environ (KEY=VALUE pairs, as os.Environ
// returns them); a flag overrides its variable. warnings name the
// CLOUDHSM_LOCAL_* variables that are no setting (typos), also when err is
// set. It returns flag.ErrHelp after printing the usage for --help. Only
// the flag package's usage and parse messages are written (to stderr).
func parseConfig(args, environ []string, stderr io.Writer) (c config, warnings []string, err error) {
	fs := c.flagSet(stderr)
	env := envSettings(environ)
	warnings = unknownEnv(fs, env)
	if err := applyEnv(fs, env); err != nil {
		return config{}, warnings, err
	}
	if err := c.applyTestEnv(env); err != nil {
		return config{}, warnings, err
	}
	if err := fs.Parse(args); err != nil {
		return config{}, warnings, err
	}
	if fs.NArg() > 0 {
		// Parsing stops at the first non-flag: `--in-memory false --listen
		// X` would otherwise ignore "false" and every flag after it.
		return config{}, warnings, fmt.Errorf("unexpected argument %q (flags after it were not read; write a boolean flag as --flag=false)", fs.Arg(0))
	}
	if err := c.check(); err != nil {
		// Say where a refused value came from when it was the environment.
		var fe *flagError
		if errors.As(err, &fe) {
			onCommandLine := false
			fs.Visit(func(f *flag.Flag) { onCommandLine = onCommandLine || f.Name == fe.flag })
			if v, ok := env[envName(fe.flag)]; ok && !onCommandLine {
				err = fmt.Errorf("%w (from %s=%q)", err, envName(fe.flag), v)
			}
		}
		return config{}, warnings, err
	}
	return c, warnings, nil
}

// flagError is a flag's value that check refuses.
type flagError struct{ flag, msg string }

func (e *flagError) Error() string { return e.msg }

func badFlag(name, format string, args ...any) error {
	return &flagError{flag: name, msg: fmt.Sprintf(format, args...)}
}

// flagSet registers every flag of the server command on c's fields.
func (c *config) flagSet(stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("cloudhsm-local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", DefaultListen, "address to listen on")
	fs.StringVar(&c.dataDir, "data-dir", defaultDataDir(), "directory of the embedded store (created on first run)")
	fs.BoolVar(&c.inMemory, "in-memory", false, "keep all state in memory; write no files")
	fs.IntVar(&c.requestLog, "request-log", 200, "API calls the console's request log keeps, per process; 0 turns it off")
	fs.IntVar(&c.consoleStreams, "console-streams", 128, "open console pages receiving live updates (beyond, a page updates no more until one closes)")
	fs.StringVar(&c.allowedHosts, "allowed-hosts", "", "comma-separated host names the admin API and console answer to: on a loopback address besides localhost, 127.0.0.1 and [::1]; elsewhere the only ones (default: any)")
	fs.StringVar(&c.databaseURL, "database-url", "", "keep the estate in PostgreSQL (postgres://user:password@host:5432/db) instead of the data directory; any number of replicas on one database serve one estate (docs/deployment.md)")
	fs.StringVar(&c.topology, "topology", "", "JSON file declaring VPCs and subnets (default: learn subnets on first sight)")
	fs.StringVar(&c.profile, "profile", "fast", "timing profile: fast (in-progress states last 500ms) or realistic (AWS-like minutes)")
	fs.StringVar(&c.activation, "activation", "auto", "cluster activation: auto (INITIALIZED becomes ACTIVE after a delay) or manual (admin API)")
	fs.StringVar(&c.account, "default-account", server.DefaultAccount, "account of callers whose access key id is not a 12-digit account id")
	fs.DurationVar(&c.deletedRetention, "deleted-retention", time.Hour, "how long DELETED clusters and backups stay visible")
	fs.IntVar(&c.quotaClusters, "quota-clusters", 0, "clusters per account and region (AWS default 4); 0 disables")
	fs.IntVar(&c.quotaHsms, "quota-hsms", 0, "HSMs per account and region (AWS default 6); 0 disables")
	fs.StringVar(&c.keygen, "keygen", "process", "where HSM keys and certificates are made: process (a helper process at the lowest CPU priority, so that other requests do not wait behind key generation; a CreateHsm the helper has not served within 2 s is served in the server) or inline (in the server)")
	fs.IntVar(&c.gcFloorMB, "gc-heap-floor-mb", 16, "the garbage collector lets the heap grow to at least this many MB before it runs (fewer collections under load; 0: Go's default pacing; ignored when GOGC or GOMEMLIMIT is set)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.logFormat, "log-format", "json", `log format on stderr: json (one JSON object a line) or text (key=value pairs); durations are written as "1.234ms"`)
	fs.DurationVar(&c.readHeaderTimeout, "read-header-timeout", 10*time.Second, "time allowed to read request headers")
	fs.DurationVar(&c.readTimeout, "read-timeout", 30*time.Second, "time allowed to read a whole request")
	fs.DurationVar(&c.writeTimeout, "write-timeout", 30*time.Second, "time allowed to write a response")
	fs.IntVar(&c.maxConns, "max-connections", 1024, "maximum concurrent connections")
	fs.StringVar(&c.adminToken, "admin-token", "", "bearer token required by the admin API from every caller (default: none, and only loopback callers are allowed; with --auth strict, one is made up and printed)")
	fs.StringVar(&c.seed, "seed", "", "snapshot JSON file (the admin API's export format) imported at startup into an empty server")
	fs.BoolVar(&c.pprof, "pprof", false, "serve net/http/pprof under /debug/pprof/ (admin access rules apply)")
	fs.StringVar(&c.auth, "auth", "permissive", "authentication: permissive (any signature; account from a 12-digit access key id) or strict (SigV4 verified against --credentials)")
	fs.StringVar(&c.credentials, "credentials", "", `JSON file of credentials for --auth strict: {"credentials":[{"accessKeyId":"...","secretAccessKey":"...","account":"111122223333"}]}`)
	fs.StringVar(&c.ec2Endpoint, "ec2-endpoint", "", "look subnets up with EC2 DescribeSubnets at this endpoint (moto, LocalStack) instead of learning them")
	fs.StringVar(&c.ec2AccessKey, "ec2-access-key-id", "test", "access key id that signs calls to --ec2-endpoint")
	fs.StringVar(&c.ec2SecretKey, "ec2-secret-access-key", "test", "secret access key that signs calls to --ec2-endpoint")
	fs.DurationVar(&c.ec2CacheTTL, "ec2-cache-ttl", 30*time.Second, "how long subnets looked up in EC2 are cached")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: cloudhsm-local [flags]\n"+
			"       cloudhsm-local admin <command> [flags]   (call a running server's admin API; see admin --help)\n"+
			"       cloudhsm-local %s --from <data-dir|postgres-url> --to <data-dir|postgres-url>   (copy an estate between stores; see %s --help)\n\n"+
			"The AWS CloudHSM v2 control plane on one machine.\n"+
			"Every flag can also be set with the environment variable CLOUDHSM_LOCAL_<FLAG> (e.g. CLOUDHSM_LOCAL_DATA_DIR).\n\nFlags:\n",
			copyEstateCommand, copyEstateCommand)
		fs.PrintDefaults()
	}
	return fs
}

// check validates the values that flag parsing alone does not, and derives
// the domain configuration, the log level and the EC2 neighbour.
func (c *config) check() error {
	if err := c.level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return badFlag("log-level", "--log-level must be debug, info, warn or error, got %q", c.logLevel)
	}
	if !slices.Contains(logFormats, c.logFormat) {
		return badFlag("log-format", "--log-format must be %s, got %q", strings.Join(logFormats, " or "), c.logFormat)
	}
	c.domain = cloudhsm.DefaultConfig()
	switch c.profile {
	case "fast":
	case "realistic":
		c.domain.Delays = cloudhsm.RealisticDelays()
	default:
		return badFlag("profile", "--profile must be fast or realistic, got %q", c.profile)
	}
	switch c.activation {
	case "auto":
	case "manual":
		c.domain.ManualActivation = true
	default:
		return badFlag("activation", "--activation must be auto or manual, got %q", c.activation)
	}
	if c.gcFloorMB < 0 {
		return badFlag("gc-heap-floor-mb", "--gc-heap-floor-mb must be 0 or more, got %d", c.gcFloorMB)
	}
	if c.keygen != "process" && c.keygen != "inline" {
		return badFlag("keygen", "--keygen must be process or inline, got %q", c.keygen)
	}
	c.domain.DeletedRetention = c.deletedRetention
	c.domain.ClustersPerRegion = c.quotaClusters
	c.domain.HsmsPerRegion = c.quotaHsms
	switch c.auth {
	case "permissive":
		if c.credentials != "" {
			return badFlag("credentials", "--credentials is used only with --auth strict")
		}
	case "strict":
		if c.credentials == "" {
			return badFlag("auth", "--auth strict needs --credentials FILE")
		}
	default:
		return badFlag("auth", "--auth must be permissive or strict, got %q", c.auth)
	}
	if c.requestLog < 0 {
		return badFlag("request-log", "--request-log must be 0 (off) or more, got %d", c.requestLog)
	}
	if c.consoleStreams < 0 {
		return badFlag("console-streams", "--console-streams must be 0 or more, got %d", c.consoleStreams)
	}
	if c.databaseURL != "" && c.inMemory {
		return badFlag("database-url", "--database-url and --in-memory both say where the estate lives: choose one")
	}
	if c.ec2Endpoint != "" {
		c.ec2 = &network.EC2Config{Endpoint: c.ec2Endpoint, AccessKeyID: c.ec2AccessKey, SecretAccessKey: c.ec2SecretKey, CacheTTL: c.ec2CacheTTL}
	}
	return nil
}
