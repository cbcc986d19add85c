package main

import (
	"fmt"
	"io"

	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
)

// printBanner tells a person what started and how to reach it. Its first
// line, "cloudhsm-local listening on URL", is what scripts wait for.
func printBanner(w io.Writer, cfg *config, srv *server.Server, endpoint string) {
	fmt.Fprintf(w, "cloudhsm-local listening on %s\n", endpoint)
	fmt.Fprintf(w, "  data: %s\n", srv.Describe())
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
		fmt.Fprintf(w, "  subnets: learned on first sight\n")
	}
	fmt.Fprintf(w, "  point a client at it:\n")
	fmt.Fprintf(w, "    aws cloudhsmv2 describe-clusters --endpoint-url %s --region us-east-1\n", endpoint)
	fmt.Fprintf(w, "    export AWS_ENDPOINT_URL_CLOUDHSM_V2=%s\n", endpoint)
	adminAccess := "loopback callers only"
	if cfg.adminToken != "" {
		adminAccess = "bearer token required"
	}
	fmt.Fprintf(w, "  admin API: %s/_cloudhsm-local/health (%s)\n", endpoint, adminAccess)
	fmt.Fprintf(w, "  metrics: %s/metrics\n", endpoint)
	if cfg.pprof {
		fmt.Fprintf(w, "  pprof: %s/debug/pprof/\n", endpoint)
	}
	if res := srv.Seeded(); res != nil {
		fmt.Fprintf(w, "  seed: %s (%d clusters, %d HSMs, %d backups)\n", cfg.seed, res.Clusters, res.Hsms, res.Backups)
	}
}
