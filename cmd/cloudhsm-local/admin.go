package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/admin"
	"github.com/cloudhsm-local/cloudhsm-local/internal/faults"
)

// DefaultEndpoint is where `cloudhsm-local admin` looks for a server.
const DefaultEndpoint = "http://" + DefaultListen

// Environment variables of the admin client.
const (
	envEndpoint   = "CLOUDHSM_LOCAL_ENDPOINT"
	envAdminToken = "CLOUDHSM_LOCAL_ADMIN_TOKEN"
)

// adminCommand is one `cloudhsm-local admin` subcommand.
type adminCommand struct {
	name, args, summary string
	// flags registers the command's own flags; run gets the positionals.
	flags func(fs *flag.FlagSet) func(ctx context.Context, c *admin.Client, args []string, out io.Writer) error
}

// commonFlags are accepted by `admin` and by every subcommand.
type commonFlags struct {
	endpoint, token string
	timeout         time.Duration
}

func (cf *commonFlags) register(fs *flag.FlagSet, defaults commonFlags) {
	fs.StringVar(&cf.endpoint, "endpoint", defaults.endpoint, "base URL of the server (env "+envEndpoint+")")
	fs.StringVar(&cf.token, "token", defaults.token, "admin token, sent as a bearer token (env "+envAdminToken+")")
	fs.DurationVar(&cf.timeout, "timeout", defaults.timeout, "time allowed for the call")
}

func adminCommands() []adminCommand {
	return []adminCommand{
		{name: "ls", summary: "print the estate as a table: clusters with their HSMs and backups, and the clock", flags: lsCommand},
		{name: "health", summary: "check that the server is ready (exit status 0 when it is)", flags: func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string, io.Writer) error {
			return func(ctx context.Context, c *admin.Client, args []string, out io.Writer) error {
				if err := noArgs(args); err != nil {
					return err
				}
				h, err := c.Health(ctx)
				if err != nil {
					return err
				}
				return printJSON(out, h)
			}
		}},
		{name: "reset", summary: "delete every cluster and backup (of one account with --account)", flags: func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string, io.Writer) error {
			account := fs.String("account", "", "reset only this 12-digit account")
			return func(ctx context.Context, c *admin.Client, args []string, out io.Writer) error {
				if err := noArgs(args); err != nil {
					return err
				}
				res, err := c.Reset(ctx, *account)
				if err != nil {
					return err
				}
				return printJSON(out, res)
			}
		}},
		{name: "export", summary: "write the whole state as a snapshot (holding HSM private keys) to stdout, or --output FILE", flags: exportCommand},
		{name: "import", args: "FILE", summary: "import a snapshot (FILE, or - for stdin; docs/snapshot-format.md)", flags: importCommand},
		{name: "clock", summary: "show the server's clock", flags: clockCommand((*admin.Client).Clock)},
		{name: "advance", args: "DURATION", summary: "advance the clock (e.g. 90s, 15m, 24h) and apply what falls due", flags: advanceCommand},
		{name: "freeze", summary: "stop the clock", flags: clockCommand((*admin.Client).Freeze)},
		{name: "resume", summary: "let a frozen clock follow real time again", flags: clockCommand((*admin.Client).Resume)},
		{name: "real-time", summary: "return the clock to real time (no offset, not frozen)", flags: clockCommand((*admin.Client).RealTime)},
		{name: "activate", args: "CLUSTER_ID", summary: "activate an INITIALIZED cluster (with --activation manual)", flags: activateCommand},
		{name: "degrade", summary: "mark an ACTIVE HSM (and its cluster) DEGRADED", flags: hsmCommand((*admin.Client).Degrade)},
		{name: "heal", summary: "return a DEGRADED HSM to ACTIVE", flags: hsmCommand((*admin.Client).Heal)},
		{name: "faults", args: "list|add|clear|delete ID", summary: "manage fault injection rules", flags: faultsCommand},
	}
}

func clockCommand(call func(*admin.Client, context.Context) (admin.ClockState, error)) func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string, io.Writer) error {
	return func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string, io.Writer) error {
		return func(ctx context.Context, c *admin.Client, args []string, out io.Writer) error {
			if err := noArgs(args); err != nil {
				return err
			}
			st, err := call(c, ctx)
			if err != nil {
				return err
			}
			return printJSON(out, st)
		}
	}
}

func hsmCommand(call func(*admin.Client, context.Context, admin.HsmTarget) (admin.ClusterSummary, error)) func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string, io.Writer) error {
	return func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string, io.Writer) error {
		var t admin.HsmTarget
		fs.StringVar(&t.ClusterID, "cluster", "", "cluster id (required)")
		fs.StringVar(&t.HsmID, "hsm", "", "HSM id (required)")
		fs.StringVar(&t.Account, "account", "", "the cluster's account (default: the server's default account)")
		fs.StringVar(&t.Region, "region", "", "the cluster's region (default: the server's default region)")
		return func(ctx context.Context, c *admin.Client, args []string, out io.Writer) error {
			if err := noArgs(args); err != nil {
				return err
			}
			if t.ClusterID == "" || t.HsmID == "" {
				return errors.New("--cluster and --hsm are required")
			}
			res, err := call(c, ctx, t)
			if err != nil {
				return err
			}
			return printJSON(out, res)
		}
	}
}

func faultsCommand(fs *flag.FlagSet) func(context.Context, *admin.Client, []string, io.Writer) error {
	var r admin.FaultRule
	var latency time.Duration
	fs.StringVar(&r.Operation, "operation", "", `add: operation to match, e.g. DescribeClusters, or "*" for all (required)`)
	fs.StringVar(&r.Account, "account", "", "add: match only this account")
	fs.StringVar(&r.Region, "region", "", "add: match only this region")
	fs.StringVar(&r.Error, "error", "", "add: error code to answer: ThrottlingException, CloudHsmInternalFailureException, CloudHsmServiceException (empty: latency only)")
	fs.StringVar(&r.Message, "message", "", "add: error message (default: AWS's message for the code)")
	fs.DurationVar(&latency, "latency", 0, "add: delay before answering, e.g. 200ms")
	fs.Float64Var(&r.Probability, "probability", 0, "add: share of matching calls to hit, in (0, 1] (default: every call)")
	fs.IntVar(&r.Count, "count", 0, "add: hit only the next N matching calls (default: no limit)")
	return func(ctx context.Context, c *admin.Client, args []string, out io.Writer) error {
		if len(args) == 0 {
			return errors.New("faults needs a subcommand: list, add, clear or delete ID")
		}
		switch sub, rest := args[0], args[1:]; sub {
		case "list":
			if err := noArgs(rest); err != nil {
				return err
			}
			rules, err := c.Faults(ctx)
			if err != nil {
				return err
			}
			if rules == nil {
				rules = []faults.Rule{}
			}
			return printJSON(out, admin.FaultList{Rules: rules})
		case "add":
			if err := noArgs(rest); err != nil {
				return err
			}
			r.Latency = faults.Duration(latency)
			rule, err := c.AddFault(ctx, r)
			if err != nil {
				return err
			}
			return printJSON(out, rule)
		case "clear":
			if err := noArgs(rest); err != nil {
				return err
			}
			n, err := c.ClearFaults(ctx)
			if err != nil {
				return err
			}
			return printJSON(out, admin.Deleted{Deleted: n})
		case "delete":
			if len(rest) != 1 {
				return errors.New("faults delete needs one argument: the rule id")
			}
			if err := c.DeleteFault(ctx, rest[0]); err != nil {
				return err
			}
			return printJSON(out, admin.Deleted{Deleted: 1})
		default:
			return fmt.Errorf("unknown faults subcommand %q: use list, add, clear or delete ID", sub)
		}
	}
}

func noArgs(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(args, " "))
	}
	return nil
}

func printJSON(out io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", b)
	return err
}

// parseInterspersed parses flags wherever they appear among the positional
// arguments (the flag package stops at the first positional).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func runAdmin(args []string, stdout, stderr io.Writer) error {
	defaults := commonFlags{endpoint: DefaultEndpoint, timeout: 30 * time.Second}
	if v, ok := os.LookupEnv(envEndpoint); ok && v != "" {
		defaults.endpoint = v
	}
	if v, ok := os.LookupEnv(envAdminToken); ok {
		defaults.token = v
	}
	cmds := adminCommands()
	fs := flag.NewFlagSet("cloudhsm-local admin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf commonFlags
	cf.register(fs, defaults)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: cloudhsm-local admin [flags] <command> [command flags] [arguments]\n\nCall the admin API of a running cloudhsm-local server.\n\nCommands:\n")
		for _, c := range cmds {
			fmt.Fprintf(stderr, "  %-34s %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
		}
		fmt.Fprintf(stderr, "\nRun `cloudhsm-local admin <command> --help` for a command's flags.\n\nFlags (also accepted after the command):\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return errors.New("admin: a command is required")
	}
	if rest[0] == "help" {
		fs.Usage()
		return nil
	}
	var cmd *adminCommand
	for i := range cmds {
		if cmds[i].name == rest[0] {
			cmd = &cmds[i]
		}
	}
	if cmd == nil {
		fs.Usage()
		return fmt.Errorf("admin: unknown command %q", rest[0])
	}
	cfs := flag.NewFlagSet("cloudhsm-local admin "+cmd.name, flag.ContinueOnError)
	cfs.SetOutput(stderr)
	var ccf commonFlags
	ccf.register(cfs, cf)
	runCmd := cmd.flags(cfs)
	cfs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: cloudhsm-local admin %s [flags] %s\n\n%s.\n\nFlags:\n", cmd.name, cmd.args, upperFirst(cmd.summary))
		cfs.PrintDefaults()
	}
	pos, err := parseInterspersed(cfs, rest[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	client := &admin.Client{Endpoint: ccf.endpoint, Token: ccf.token, HTTP: &http.Client{}} // --timeout bounds the call
	ctx, cancel := context.WithTimeout(context.Background(), ccf.timeout)
	defer cancel()
	if err := runCmd(ctx, client, pos, stdout); err != nil {
		return fmt.Errorf("admin %s: %w", cmd.name, err)
	}
	return nil
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// exportCommand is `admin export [--output FILE]`.
func exportCommand(fs *flag.FlagSet) func(context.Context, *admin.Client, []string, io.Writer) error {
	output := fs.String("output", "", "write to this file instead of stdout")
	return func(ctx context.Context, c *admin.Client, args []string, out io.Writer) error {
		if err := noArgs(args); err != nil {
			return err
		}
		b, err := c.Export(ctx)
		if err != nil {
			return err
		}
		if *output != "" {
			return os.WriteFile(*output, b, 0o600)
		}
		_, err = out.Write(b)
		return err
	}
}

// importCommand is `admin import FILE`.
func importCommand(fs *flag.FlagSet) func(context.Context, *admin.Client, []string, io.Writer) error {
	return func(ctx context.Context, c *admin.Client, args []string, out io.Writer) error {
		if len(args) != 1 {
			return errors.New("import needs one argument: the snapshot file (or - for stdin)")
		}
		var b []byte
		var err error
		if args[0] == "-" {
			b, err = io.ReadAll(os.Stdin)
		} else {
			b, err = os.ReadFile(args[0])
		}
		if err != nil {
			return err
		}
		res, err := c.Import(ctx, bytes.NewReader(b))
		if err != nil {
			return err
		}
		return printJSON(out, res)
	}
}

// advanceCommand is `admin advance DURATION`.
func advanceCommand(fs *flag.FlagSet) func(context.Context, *admin.Client, []string, io.Writer) error {
	return func(ctx context.Context, c *admin.Client, args []string, out io.Writer) error {
		if len(args) != 1 {
			return errors.New("advance needs one argument: a duration such as 90s, 15m or 24h")
		}
		d, err := time.ParseDuration(args[0])
		if err != nil || d < 0 {
			return fmt.Errorf("advance: %q is not a non-negative duration such as 90s, 15m or 24h", args[0])
		}
		st, err := c.Advance(ctx, d)
		if err != nil {
			return err
		}
		return printJSON(out, st)
	}
}

// activateCommand is `admin activate CLUSTER_ID`.
func activateCommand(fs *flag.FlagSet) func(context.Context, *admin.Client, []string, io.Writer) error {
	account := fs.String("account", "", "the cluster's account (default: the server's default account)")
	region := fs.String("region", "", "the cluster's region (default: the server's default region)")
	return func(ctx context.Context, c *admin.Client, args []string, out io.Writer) error {
		if len(args) != 1 {
			return errors.New("activate needs one argument: the cluster id")
		}
		res, err := c.Activate(ctx, args[0], *account, *region)
		if err != nil {
			return err
		}
		return printJSON(out, res)
	}
}
