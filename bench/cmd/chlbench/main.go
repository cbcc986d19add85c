// Command chlbench measures a built cloudhsm-local binary against the
// project's performance targets. It builds nothing: it runs the binary given
// with --bin as a subprocess on a free 127.0.0.1 port, drives it with raw
// net/http keep-alive requests shaped like shared/bench/describe.lua, and
// prints one line of figures per scenario, then one line per target.
//
//	go build -o /tmp/chl ./cmd/cloudhsm-local
//	go run ./bench/cmd/chlbench --bin /tmp/chl               # every scenario
//	go run ./bench/cmd/chlbench --bin /tmp/chl --scenarios read,latency
//	go run ./bench/cmd/chlbench --bin /tmp/chl --smoke       # ~1 s each, tiny sizes
//
// Scenarios: read, latency, createhsm (one in-memory server with a 25-cluster
// page), write (CreateCluster from 32 clients on disk, then kill -9 and a
// check that every acknowledged cluster survived), startup, rss and paging
// (an estate of --clusters clusters on disk, seeded through the API), and
// shared (replicas of one PostgreSQL estate, --pg-url; see shared.go).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// benchAccount is the account of describe.lua and seed.py.
const benchAccount = "555555555555"

type config struct {
	bin           string
	floor         string
	smoke         bool
	dur           time.Duration
	clients       int
	openConns     int
	peak          float64
	latencyRounds int
	maxRounds     int
	quietSteal    float64
	writeClients  int
	clusters      int
	startupRuns   int
	workDir       string
	estateDir     string
	serverArgs    []string
	scenarios     map[string]bool
	pgURL         string
}

var allScenarios = []string{"read", "latency", "createhsm", "write", "startup", "rss", "paging", "shared"}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	os.Exit(run())
}

// parseFlags reads the command line into a config.
func parseFlags() (config, error) {
	var cfg config
	var scen string
	var args listFlag
	flag.StringVar(&cfg.bin, "bin", "", "path to a cloudhsm-local binary (required)")
	flag.StringVar(&cfg.floor, "floor", "", "optional path to a built shared/bench/floor server: the read scenario then also measures it and prints vs_floor")
	flag.BoolVar(&cfg.smoke, "smoke", false, "run every scenario briefly with tiny sizes (for the test suite)")
	flag.DurationVar(&cfg.dur, "duration", 10*time.Second, "measuring time of each load phase")
	flag.IntVar(&cfg.clients, "clients", 16, "concurrent clients of the closed-loop read phases (wrk -c16 in compare.sh)")
	flag.IntVar(&cfg.openConns, "open-conns", 16, "connections of the open-loop (fixed-rate) phases of latency and createhsm")
	flag.Float64Var(&cfg.peak, "peak", 0, "take this as the peak rate (requests/s) instead of measuring it: the open loops of latency and createhsm run at a half and a quarter of it (for comparing runs at the same rate)")
	flag.IntVar(&cfg.latencyRounds, "latency-rounds", 5, "quiet rounds wanted by the open-loop scenarios (latency: ours and the floor's in turn; createhsm: reads alone and during CreateHsm in turn), each --duration/latency-rounds long; the median quiet round's p99 is the figure")
	flag.IntVar(&cfg.maxRounds, "max-rounds", 0, "rounds of each kind run at most while waiting for --latency-rounds quiet ones (default 3 x --latency-rounds)")
	flag.Float64Var(&cfg.quietSteal, "quiet-steal-pct", 1, "a round is quiet when the hypervisor stole less than this share (percent) of the machine's CPU time while it ran (/proc/stat)")
	flag.IntVar(&cfg.writeClients, "write-clients", 32, "concurrent clients of the write scenario and of seeding")
	flag.IntVar(&cfg.clusters, "clusters", 100000, "clusters in the big account of the startup, rss and paging scenarios")
	flag.IntVar(&cfg.startupRuns, "startup-runs", 5, "start-ups measured per case (the median is reported)")
	flag.StringVar(&cfg.workDir, "work", "", "working directory for data directories and logs (default: a new temporary directory, removed at the end)")
	flag.StringVar(&cfg.estateDir, "estate", "", "data directory of the big estate; reused when it already holds --clusters clusters (default: under --work)")
	flag.StringVar(&scen, "scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios to run: "+strings.Join(allScenarios, ","))
	flag.StringVar(&cfg.pgURL, "pg-url", "", "the shared scenario: a PostgreSQL server's maintenance database (postgres://user@host:port/postgres) where chlbench creates its databases; without it the shared targets are n/a")
	flag.Var(&args, "server-arg", "extra argument for the server (repeatable), e.g. --server-arg=--log-level=warn")
	flag.Parse()
	if cfg.bin == "" {
		return cfg, fmt.Errorf("--bin PATH is required (build one with: go build -o /tmp/chl ./cmd/cloudhsm-local)")
	}
	if abs, err := filepath.Abs(cfg.bin); err == nil {
		cfg.bin = abs
	}
	cfg.serverArgs = args
	cfg.scenarios = map[string]bool{}
	for _, s := range strings.Split(scen, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(allScenarios, s) {
			return cfg, fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(allScenarios, ","))
		}
		cfg.scenarios[s] = true
	}
	return cfg, nil
}

func run() int {
	cfg, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chlbench:", err)
		return 2
	}
	tmp := false
	if cfg.smoke {
		cfg.dur = time.Second
		cfg.clusters = 200
		cfg.startupRuns = 1
		if cfg.clients > 8 {
			cfg.clients = 8
		}
	}
	if cfg.workDir == "" {
		d, err := os.MkdirTemp("", "chlbench-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "chlbench:", err)
			return 1
		}
		cfg.workDir = d
		tmp = true
	} else if err := os.MkdirAll(cfg.workDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "chlbench:", err)
		return 1
	}
	if cfg.estateDir == "" {
		cfg.estateDir = filepath.Join(cfg.workDir, "estate")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{cfg: cfg}
	defer b.cleanup()
	fmt.Printf("# chlbench %s bin=%s GOMAXPROCS=%d nproc=%d duration=%s clusters=%d smoke=%v loadavg=%q\n",
		time.Now().UTC().Format(time.RFC3339), cfg.bin, runtime.GOMAXPROCS(0), runtime.NumCPU(), cfg.dur, cfg.clusters, cfg.smoke, loadavg())
	failed := 0
	for _, s := range []struct {
		name string
		on   bool
		fn   func(context.Context) error
	}{
		{"read", cfg.scenarios["read"], b.read},
		{"latency", cfg.scenarios["latency"], b.latency},
		{"createhsm", cfg.scenarios["createhsm"], b.createHsm},
		{"write", cfg.scenarios["write"], b.write},
		{"estate", cfg.scenarios["startup"] || cfg.scenarios["rss"] || cfg.scenarios["paging"], b.estate},
		{"shared", cfg.scenarios["shared"], b.shared},
	} {
		if !s.on {
			continue
		}
		if err := s.fn(ctx); err != nil {
			fmt.Printf("%-16s error=%q\n", s.name, err.Error())
			failed++
		}
		if ctx.Err() != nil {
			break
		}
	}
	b.printTargets()
	fmt.Printf("# end %s loadavg=%q\n", time.Now().UTC().Format(time.RFC3339), loadavg())
	b.cleanup()
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "chlbench: %d scenario(s) failed; server logs in %s\n", failed, cfg.workDir)
		return 1
	}
	if tmp {
		os.RemoveAll(cfg.workDir)
	}
	return 0
}

// loadavg returns /proc/loadavg's first three fields: other work on the
// machine skews every figure, so each run records it.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
