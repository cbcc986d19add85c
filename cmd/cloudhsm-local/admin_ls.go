package main

import (
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/admin"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/snapshot"
)

// lsCommand is `cloudhsm-local admin ls`: the estate as a table for
// terminals (each cluster with its HSMs and backups, by account and
// region, and the clock), read from the admin API's export.
func lsCommand(fs *flag.FlagSet) func(context.Context, *admin.Client, []string, io.Writer) error {
	account := fs.String("account", "", "only this account")
	region := fs.String("region", "", "only this region")
	return func(ctx context.Context, c *admin.Client, args []string, out io.Writer) error {
		if err := noArgs(args); err != nil {
			return err
		}
		clk, err := c.Clock(ctx)
		if err != nil {
			return err
		}
		raw, err := c.Export(ctx)
		if err != nil {
			return err
		}
		snap, err := snapshot.Decode(bytes.NewReader(raw))
		if err != nil {
			return fmt.Errorf("read the export: %w", err)
		}
		mode := "running"
		if clk.Frozen {
			mode = "frozen"
		}
		fmt.Fprintf(out, "clock  %s (%s)\n\n", clk.Now, mode)
		return printEstate(out, snap, cloudhsm.Tenant{Account: *account, Region: *region})
	}
}

// printEstate writes the clusters of the snapshot that the filter selects
// (empty fields select all), each followed by its HSMs and backups, then
// the backups whose cluster is gone.
func printEstate(out io.Writer, snap *cloudhsm.Snapshot, only cloudhsm.Tenant) error {
	keep := func(t cloudhsm.Tenant) bool {
		return (only.Account == "" || t.Account == only.Account) && (only.Region == "" || t.Region == only.Region)
	}
	type key struct {
		t  cloudhsm.Tenant
		id string
	}
	backups := map[key][]*cloudhsm.Backup{}
	for _, b := range snap.Backups {
		if keep(b.Tenant) {
			backups[key{b.Tenant, b.ClusterID}] = append(backups[key{b.Tenant, b.ClusterID}], b)
		}
	}
	var clusters []*cloudhsm.Cluster
	for _, c := range snap.Clusters {
		if keep(c.Tenant) {
			clusters = append(clusters, c)
		}
	}
	slices.SortFunc(clusters, func(a, b *cloudhsm.Cluster) int {
		return cmp.Or(cmp.Compare(a.Tenant.Account, b.Tenant.Account), cmp.Compare(a.Tenant.Region, b.Tenant.Region), a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
	if len(clusters) == 0 && len(backups) == 0 {
		_, err := fmt.Fprintln(out, "(no clusters or backups)")
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tREGION\tRESOURCE\tID\tSTATE\tDETAIL\tCREATED")
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	backupRow := func(b *cloudhsm.Backup, indent string) {
		detail := b.HsmType
		if b.SourceBackup != "" {
			detail += " copy of " + b.SourceBackup + " (" + b.SourceRegion + ")"
		}
		if b.NeverExpires {
			detail += " never expires"
		}
		fmt.Fprintf(tw, "%s\t%s\t%sbackup\t%s\t%s\t%s\t%s\n", b.Tenant.Account, b.Tenant.Region, indent, b.ID, b.State, strings.TrimSpace(detail), stamp(b.Created))
	}
	for _, c := range clusters {
		fmt.Fprintf(tw, "%s\t%s\tcluster\t%s\t%s\t%s %s, %d HSM(s)\t%s\n", c.Tenant.Account, c.Tenant.Region, c.ID, c.State, c.HsmType, c.Mode, len(c.Hsms), stamp(c.Created))
		for _, h := range c.Hsms {
			fmt.Fprintf(tw, "%s\t%s\t  hsm\t%s\t%s\t%s %s %s\t%s\n", c.Tenant.Account, c.Tenant.Region, h.ID, h.State, h.AZ, h.EniIP, h.EniID, stamp(h.Created))
		}
		k := key{c.Tenant, c.ID}
		for _, b := range backups[k] {
			backupRow(b, "  ")
		}
		delete(backups, k)
	}
	var orphans []*cloudhsm.Backup
	for _, bs := range backups {
		orphans = append(orphans, bs...)
	}
	slices.SortFunc(orphans, func(a, b *cloudhsm.Backup) int {
		return cmp.Or(cmp.Compare(a.Tenant.Account, b.Tenant.Account), cmp.Compare(a.Tenant.Region, b.Tenant.Region), a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
	for _, b := range orphans {
		backupRow(b, "")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "\n%d cluster(s), %d backup(s) without a cluster\n", len(clusters), len(orphans))
	return err
}
