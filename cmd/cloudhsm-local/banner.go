package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
	"github.com/cloudhsm-local/cloudhsm-local/internal/sigv4"
)

// printBanner tells a person what started and how to reach it: where the
// state is and what it held, how the server behaves, where to point a
// client. Its first line, "cloudhsm-local listening on URL", is what
// scripts wait for.
func printBanner(w io.Writer, cfg *config, srv *server.Server, endpoint string) {
	fmt.Fprintf(w, "cloudhsm-local listening on %s\n", endpoint)
	printState(w, cfg, srv)
	printBehaviour(w, cfg, srv)
	printAccess(w, cfg, endpoint)
}

// printState: where the state lives and what it held at start: what
// the store held, or what a seed imported into the empty store.
func printState(w io.Writer, cfg *config, srv *server.Server) {
	fmt.Fprintf(w, "  data: %s\n", srv.Describe())
	st := srv.Service().Stats()
	switch {
	case srv.Seeded() != nil:
		fmt.Fprintf(w, "  loaded: from the seed %s (the store was empty): %s\n", cfg.seed, describeStats(st))
	case total(st.Clusters)+total(st.Backups) == 0:
		fmt.Fprintf(w, "  loaded: nothing (the estate starts empty)\n")
	default:
		fmt.Fprintf(w, "  loaded: from the store: %s\n", describeStats(st))
		if cfg.seed != "" {
			fmt.Fprintf(w, "  seed: %s not imported: a seed only fills an empty store\n", cfg.seed)
		}
	}
}

// printBehaviour: timing, activation, quotas, authentication, subnets.
func printBehaviour(w io.Writer, cfg *config, srv *server.Server) {
	d := cfg.domain.Delays
	if d == cloudhsm.UniformDelays(d.ClusterCreate) {
		fmt.Fprintf(w, "  timing: %s (every in-progress state lasts %s)\n", cfg.profile, short(d.ClusterCreate))
	} else {
		fmt.Fprintf(w, "  timing: %s (AWS-like): cluster create %s, initialize %s, activate %s, delete %s;\n", cfg.profile, short(d.ClusterCreate), short(d.ClusterInitialize), short(d.ClusterActivate), short(d.ClusterDelete))
		fmt.Fprintf(w, "          HSM create %s, delete %s; backup %s, copy to a region %s; HsmType change %s per HSM\n", short(d.HsmCreate), short(d.HsmDelete), short(d.BackupCreate), short(d.BackupCopy), short(d.ModifyPerHsm))
	}
	if cfg.domain.ManualActivation {
		fmt.Fprintf(w, "  activation: manual (an INITIALIZED cluster stays so until `cloudhsm-local admin activate CLUSTER_ID`)\n")
	} else {
		fmt.Fprintf(w, "  activation: auto (an INITIALIZED cluster becomes ACTIVE after %s)\n", short(d.ClusterActivate))
	}
	fmt.Fprintf(w, "  quotas: %s\n", describeQuotas(cfg.domain.ClustersPerRegion, cfg.domain.HsmsPerRegion))
	printClock(w, srv)
	if srv.Strict() {
		fmt.Fprintf(w, "  auth: strict (SigV4 signatures are verified against %s; the account is the key's)\n", cfg.credentials)
	} else {
		fmt.Fprintf(w, "  auth: permissive (any signature is accepted; the account comes from a 12-digit access key id, else %s)\n", cfg.account)
	}
	switch {
	case cfg.ec2Endpoint != "":
		fmt.Fprintf(w, "  subnets: looked up in EC2 at %s\n", cfg.ec2Endpoint)
	case cfg.topology != "":
		fmt.Fprintf(w, "  subnets: declared in %s\n", cfg.topology)
	default:
		fmt.Fprintf(w, "  subnets: learned on first sight (an unknown subnet id gets a VPC, an AZ and a CIDR)\n")
	}
}

// printAccess: how to reach the AWS API, the admin API and the metrics.
func printAccess(w io.Writer, cfg *config, endpoint string) {
	fmt.Fprintf(w, "  point a client at it:\n")
	fmt.Fprintf(w, "    aws cloudhsmv2 describe-clusters --endpoint-url %s --region us-east-1\n", endpoint)
	fmt.Fprintf(w, "    export AWS_ENDPOINT_URL_CLOUDHSM_V2=%s\n", endpoint)
	adminAccess := "loopback callers only"
	if cfg.adminToken != "" {
		adminAccess = "bearer token required"
	}
	fmt.Fprintf(w, "  console: %s%s (open it in a browser)\n", endpoint, server.ConsoleURL)
	fmt.Fprintf(w, "  admin API: %s/_cloudhsm-local/health (%s)\n", endpoint, adminAccess)
	fmt.Fprintf(w, "  metrics: %s/metrics\n", endpoint)
	if cfg.pprof {
		fmt.Fprintf(w, "  pprof: %s/debug/pprof/\n", endpoint)
	}
}

// printClock: the clock the estate kept (it comes back where it was after a
// restart), and in strict mode a warning when signatures made with real time
// would be refused: SigV4 refuses a signature more than sigv4.DefaultMaxSkew
// off the server's clock (the server leaves the Verifier's MaxSkew unset).
func printClock(w io.Writer, srv *server.Server) {
	ck := srv.Service().Clock()
	st := ck.State()
	now := ck.Now()
	switch {
	case st.Frozen:
		fmt.Fprintf(w, "  clock: frozen at %s (kept with the estate; `cloudhsm-local admin resume` or `real-time`)\n", now.UTC().Format(time.RFC3339))
	case st.Offset != 0:
		sign := "+"
		if st.Offset < 0 {
			sign = ""
		}
		fmt.Fprintf(w, "  clock: %s (real time %s%s, kept with the estate; `cloudhsm-local admin real-time` drops the offset)\n", now.UTC().Format(time.RFC3339), sign, st.Offset)
	default:
		fmt.Fprintf(w, "  clock: real time\n")
	}
	if off := now.Sub(time.Now()); srv.Strict() && (off > sigv4.DefaultMaxSkew || off < -sigv4.DefaultMaxSkew) {
		fmt.Fprintf(w, "  warning: the clock is %s off real time, and strict mode checks signatures against it: SDK clients, which sign with real time, are refused (InvalidSignatureException: Signature expired) until `cloudhsm-local admin real-time`\n", off.Round(time.Second))
	}
}

// describeStats is "4 clusters (1 ACTIVE, 3 UNINITIALIZED), 5 HSMs, 6
// backups (6 READY)": the resources by state.
func describeStats(st cloudhsm.Stats) string {
	return fmt.Sprintf("%s, %s, %s", byState(st.Clusters, "cluster"), byState(st.Hsms, "HSM"), byState(st.Backups, "backup"))
}

func byState(counts map[string]int, noun string) string {
	n := total(counts)
	s := fmt.Sprintf("%d %s", n, noun)
	if n != 1 {
		s += "s"
	}
	if n == 0 || noun == "HSM" {
		return s
	}
	var parts []string
	for _, state := range slices.Sorted(maps.Keys(counts)) {
		if counts[state] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[state], state))
		}
	}
	return s + " (" + strings.Join(parts, ", ") + ")"
}

func total(counts map[string]int) int {
	n := 0
	for _, v := range counts {
		n += v
	}
	return n
}

// describeQuotas says what --quota-clusters and --quota-hsms allow.
func describeQuotas(clusters, hsms int) string {
	if clusters == 0 && hsms == 0 {
		return "none (AWS's defaults are 4 clusters and 6 HSMs per account and region: --quota-clusters 4 --quota-hsms 6)"
	}
	limit := func(n int, noun string) string {
		if n == 0 {
			return "any number of " + noun
		}
		return fmt.Sprintf("%d %s", n, noun)
	}
	return limit(clusters, "clusters") + " and " + limit(hsms, "HSMs") + " per account and region"
}

// short writes d as a person would: 500ms, 90s as 1m30s, 3m, 1h.
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
