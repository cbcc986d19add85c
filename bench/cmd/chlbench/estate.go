package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	srvpkg "github.com/cloudhsm-local/cloudhsm-local/internal/server"
)

// estateMarker records, in the estate's data directory, what chlbench seeded.
type estateMarker struct {
	Clusters int  `json:"clusters"`
	Backups  bool `json:"backups"`
}

const markerName = "chlbench-estate.json"

func median(xs []time.Duration) time.Duration {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianInt(xs []int64) int64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// startups starts the binary runs times with args from newArgs(run), and
// returns the start-up times and the resident memory after settle.
func (b *bench) startups(ctx context.Context, name string, runs int, settle time.Duration, keepLast bool, newArgs func(int) []string) ([]time.Duration, []time.Duration, []memory, *server, error) {
	var ups, listens []time.Duration
	var mems []memory
	for i := range runs {
		s, err := b.start(ctx, fmt.Sprintf("%s-%d", name, i), newArgs(i)...)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		ups = append(ups, s.startup)
		listens = append(listens, s.listening)
		time.Sleep(settle)
		m, err := readMemory(s.pid())
		if err != nil {
			s.kill()
			return nil, nil, nil, nil, err
		}
		mems = append(mems, m)
		if keepLast && i == runs-1 {
			return ups, listens, mems, s, nil
		}
		if err := s.stop(); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	return ups, listens, mems, nil, nil
}

func rssOf(ms []memory) int64 {
	x := make([]int64, len(ms))
	for i, m := range ms {
		x[i] = m.rss
	}
	return medianInt(x)
}

func (b *bench) estate(ctx context.Context) error {
	idleDisk, idleMem, err := b.emptyStartups(ctx)
	if err != nil {
		return err
	}
	if err := b.seedEstate(ctx); err != nil {
		return err
	}
	return b.fullStartups(ctx, idleDisk, idleMem)
}

// emptyStartups measures start-ups with an empty store, on disk and in
// memory, and returns the idle memory of each.
func (b *bench) emptyStartups(ctx context.Context) (idleDisk, idleMem int64, err error) {
	cfg := b.cfg
	// ---- start-up with an empty store, on disk and in memory ----
	emptyDisk, emptyDiskListen, memDisk, _, err := b.startups(ctx, "empty-disk", cfg.startupRuns, 300*time.Millisecond, false, func(i int) []string {
		return []string{"--data-dir", filepath.Join(cfg.workDir, fmt.Sprintf("empty-%d", i))}
	})
	if err != nil {
		return 0, 0, err
	}
	emptyMem, _, memMem, _, err := b.startups(ctx, "empty-memory", cfg.startupRuns, 300*time.Millisecond, false, func(int) []string {
		return []string{"--in-memory"}
	})
	if err != nil {
		return 0, 0, err
	}
	// Again on the data directory of the first run: a store that holds no
	// cluster but is initialized (simulated roots and token secret exist).
	reopen, _, _, _, err := b.startups(ctx, "empty-reopen", cfg.startupRuns, 0, false, func(int) []string {
		return []string{"--data-dir", filepath.Join(cfg.workDir, "empty-0")}
	})
	if err != nil {
		return 0, 0, err
	}
	idleDisk, idleMem = rssOf(memDisk), rssOf(memMem)
	if cfg.scenarios["startup"] {
		line("startup-empty", "runs", cfg.startupRuns, "disk_ms", ms(median(emptyDisk)), "disk_min_ms", ms(slices.Min(emptyDisk)),
			"disk_listening_line_ms", ms(median(emptyDiskListen)), "memory_ms", ms(median(emptyMem)), "memory_min_ms", ms(slices.Min(emptyMem)),
			"disk_reopen_ms", ms(median(reopen)), "disk_reopen_min_ms", ms(slices.Min(reopen)))
		worst := max(median(emptyDisk), median(emptyMem))
		b.target("startup_empty", ms(worst)+"ms", "<=20ms", worst <= 20*time.Millisecond, "median of "+strconv.Itoa(cfg.startupRuns)+" first starts; disk "+ms(median(emptyDisk))+"ms, --in-memory "+ms(median(emptyMem))+"ms; reopening an initialized empty data dir "+ms(median(reopen))+"ms")
	}
	return idleDisk, idleMem, nil
}

// seedEstate makes the estate of n clusters in benchAccount and 25 in
// smallAccount on disk, unless the estate directory holds it already.
func (b *bench) seedEstate(ctx context.Context) error {
	cfg := b.cfg
	n := cfg.clusters
	dir := cfg.estateDir
	var mk estateMarker
	if raw, err := os.ReadFile(filepath.Join(dir, markerName)); err == nil {
		_ = json.Unmarshal(raw, &mk)
	}
	if mk.Backups {
		return fmt.Errorf("estate directory %s also holds backups (chlbench before 2026-11-27 imported them into the estate, which inflates start-up and memory per cluster); remove it or pass another --estate", dir)
	}
	if mk.Clusters != n {
		if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
			return fmt.Errorf("estate directory %s is not empty and holds no %d-cluster estate of chlbench; remove it or pass another --estate", dir, n)
		}
		s, err := b.start(ctx, "estate-seed", "--data-dir", dir)
		if err != nil {
			return err
		}
		idle, err := readMemory(s.pid())
		if err != nil {
			return err
		}
		c := newClient(s.url, cfg.writeClients)
		_, r := seedShared(ctx, c, benchAccount, n, cfg.writeClients)
		if err := r.err(); err != nil {
			return fmt.Errorf("seed %d clusters: %w", n, err)
		}
		if _, r2 := seedShared(ctx, c, smallAccount, 25, 8); r2.err() != nil {
			return fmt.Errorf("seed 25 clusters: %w", r2.err())
		}
		if err := waitSettled(ctx, c, benchAccount); err != nil {
			return err
		}
		if err := waitSettled(ctx, c, smallAccount); err != nil {
			return err
		}
		live, err := readMemory(s.pid())
		if err != nil {
			return err
		}
		c.close()
		if err := s.stop(); err != nil {
			return err
		}
		line("seed", "clusters", n, "clients", cfg.writeClients, "creates_per_s", f0(r.rps()), "seconds", f2(r.elapsed.Seconds()),
			"rss_before_mb", mb(idle.rss), "rss_after_seed_mb", mb(live.rss), "anon_after_seed_mb", mb(live.anon),
			"bytes_per_cluster_live", (live.rss-idle.rss)/int64(n))
		mk = estateMarker{Clusters: n}
		raw, _ := json.Marshal(mk)
		if err := os.WriteFile(filepath.Join(dir, markerName), raw, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// fullStartups measures start-ups with the estate, the memory they hold,
// and then paging.
func (b *bench) fullStartups(ctx context.Context, idleDisk, idleMem int64) error {
	cfg := b.cfg
	n := cfg.clusters
	dir := cfg.estateDir
	full, fullListen, memFull, s, err := b.startups(ctx, "estate", cfg.startupRuns, time.Second, true, func(int) []string {
		return []string{"--data-dir", dir}
	})
	if err != nil {
		return err
	}
	defer func() { _ = s.stop() }()
	if cfg.scenarios["startup"] {
		label := "startup-" + strconv.Itoa(n)
		line(label, "runs", cfg.startupRuns, "ms", ms(median(full)), "min_ms", ms(slices.Min(full)), "listening_line_ms", ms(median(fullListen)))
		if n >= 100000 {
			b.target("startup_100k", ms(median(full))+"ms", "<=300ms", median(full) <= 300*time.Millisecond, "median of "+strconv.Itoa(cfg.startupRuns))
		} else {
			b.targetNA("startup_100k", "<=300ms", "only "+strconv.Itoa(n)+" clusters")
		}
	}
	if cfg.scenarios["rss"] {
		rssFull := rssOf(memFull)
		perCluster := (rssFull - idleDisk) / int64(n)
		line("rss", "idle_disk_mb", mb(idleDisk), "idle_memory_mb", mb(idleMem), "clusters", n, "after_restart_mb", mb(rssFull),
			"anon_mb", mb(memFull[len(memFull)-1].anon), "file_mb", mb(memFull[len(memFull)-1].file), "bytes_per_cluster", perCluster)
		worst := max(idleDisk, idleMem)
		b.target("rss_idle", mb(worst)+"MB", "<=20MB", worst <= 20<<20, "disk "+mb(idleDisk)+"MB, --in-memory "+mb(idleMem)+"MB")
		if n >= 100000 {
			b.target("rss_per_cluster", strconv.FormatInt(perCluster, 10)+"B", "<=2048B", perCluster <= 2048, "(VmRSS after restart with "+strconv.Itoa(n)+" - idle)/"+strconv.Itoa(n))
		} else {
			b.targetNA("rss_per_cluster", "<=2048B", "only "+strconv.Itoa(n)+" clusters")
		}
	}
	if !cfg.scenarios["paging"] {
		return nil
	}
	return b.paging(ctx, s)
}

// waitSettled waits until no cluster of account is CREATE_IN_PROGRESS.
func waitSettled(ctx context.Context, c *client, account string) error {
	for i := 0; ; i++ {
		var out describeClustersOut
		if err := c.call(ctx, account, "DescribeClusters", describeClustersIn{Filters: map[string][]string{"states": {"CREATE_IN_PROGRESS"}}, MaxResults: 1}, &out); err != nil {
			return err
		}
		if len(out.Clusters) == 0 {
			return nil
		}
		if i > 1200 {
			return errors.New("clusters still CREATE_IN_PROGRESS after 2 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pageCost measures one request as a closed loop and returns its figures.
func (b *bench) pageCost(ctx context.Context, c *client, r *request) (*result, error) {
	d := b.cfg.dur / 2
	closedLoop(ctx, c, b.cfg.clients, d/5, func(int, int) *request { return r })
	res := closedLoop(ctx, c, b.cfg.clients, d, func(int, int) *request { return r })
	return res, res.err()
}

// compare prints and records the cost of the first and the last page of the
// big account against the page of the small account. Cost is measured as
// throughput: ratio = small_rps / page_rps (1.0: the same cost).
func (b *bench) compare(ctx context.Context, c *client, name string, small, first, last *request) error {
	rs, err := b.pageCost(ctx, c, small)
	if err != nil {
		return fmt.Errorf("%s small: %w", name, err)
	}
	rf, err := b.pageCost(ctx, c, first)
	if err != nil {
		return fmt.Errorf("%s first: %w", name, err)
	}
	rl, err := b.pageCost(ctx, c, last)
	if err != nil {
		return fmt.Errorf("%s last: %w", name, err)
	}
	first2, last2 := rs.rps()/rf.rps(), rs.rps()/rl.rps()
	line("paging-"+name, "small_rps", f0(rs.rps()), "small_p50_ms", ms(rs.pct(50)), "first_rps", f0(rf.rps()), "first_p50_ms", ms(rf.pct(50)),
		"last_rps", f0(rl.rps()), "last_p50_ms", ms(rl.pct(50)), "first_cost_x", f2(first2), "last_cost_x", f2(last2))
	if b.cfg.clusters >= 100000 {
		worst := max(first2, last2)
		b.target("paging_"+name, f2(worst)+"x", "<=2x", worst <= 2, "first "+f2(first2)+"x, last "+f2(last2)+"x of the 25-item account")
	} else {
		b.targetNA("paging_"+name, "<=2x", "only "+strconv.Itoa(b.cfg.clusters)+" items")
	}
	return nil
}

func (b *bench) paging(ctx context.Context, s *server) error {
	c := newClient(s.url, b.cfg.clients+8)
	defer c.close()
	ids, smallIDs, err := b.pagingClusters(ctx, c)
	if err != nil {
		return err
	}
	if err := b.pagingTags(ctx, c, ids, smallIDs); err != nil {
		return err
	}
	// DescribeBackups: n backups in the big account, 25 in the small one,
	// on a copy of the estate, so that start-up and memory keep measuring
	// clusters alone on the estate itself.
	if err := s.stop(); err != nil {
		return err
	}
	return b.pagingBackups(ctx, ids, smallIDs)
}

// pagingClusters compares DescribeClusters' first and last pages of the big
// account with the small account's page, and returns both accounts' ids.
func (b *bench) pagingClusters(ctx context.Context, c *client) (ids, smallIDs []string, err error) {
	n := b.cfg.clusters
	ids, lastTok, err := walkClusters(ctx, c, benchAccount)
	if err != nil {
		return nil, nil, err
	}
	if len(ids) != n {
		return nil, nil, fmt.Errorf("the big account lists %d clusters, want %d", len(ids), n)
	}
	smallIDs, _, err = walkClusters(ctx, c, smallAccount)
	if err != nil {
		return nil, nil, err
	}
	if len(smallIDs) != 25 {
		return nil, nil, fmt.Errorf("the small account lists %d clusters, want 25", len(smallIDs))
	}
	dc := func(account, token string) *request {
		body, _ := json.Marshal(describeClustersIn{MaxResults: 25, NextToken: token})
		return newRequest(account, "DescribeClusters", body)
	}
	return ids, smallIDs, b.compare(ctx, c, "describeclusters", dc(smallAccount, ""), dc(benchAccount, ""), dc(benchAccount, lastTok))
}

// pagingTags: 50 tags on the first and last cluster of the big account and
// on one cluster of the small one, 10 per page.
func (b *bench) pagingTags(ctx context.Context, c *client, ids, smallIDs []string) error {
	n := len(ids)
	var tags []tag
	for i := range 49 {
		tags = append(tags, tag{Key: fmt.Sprintf("k%02d", i), Value: "v"})
	}
	for _, t := range []struct{ account, id string }{{benchAccount, ids[0]}, {benchAccount, ids[n-1]}, {smallAccount, smallIDs[0]}} {
		if err := c.call(ctx, t.account, "TagResource", map[string]any{"ResourceId": t.id, "TagList": tags}, nil); err != nil {
			return err
		}
	}
	lt := func(account, id, token string) *request {
		body, _ := json.Marshal(listTagsIn{ResourceId: id, MaxResults: 10, NextToken: token})
		return newRequest(account, "ListTags", body)
	}
	tok := ""
	for {
		var out listTagsOut
		if err := c.call(ctx, benchAccount, "ListTags", listTagsIn{ResourceId: ids[n-1], MaxResults: 10, NextToken: tok}, &out); err != nil {
			return err
		}
		if out.NextToken == "" {
			break
		}
		tok = out.NextToken
	}
	return b.compare(ctx, c, "listtags", lt(smallAccount, smallIDs[0], ""), lt(benchAccount, ids[0], ""), lt(benchAccount, ids[n-1], tok))
}

// pagingBackups starts a server on a copy of the estate with a backup per
// cluster (made once, then kept) and compares DescribeBackups' pages.
func (b *bench) pagingBackups(ctx context.Context, ids, smallIDs []string) error {
	n := b.cfg.clusters
	s, err := b.backupEstate(ctx, ids, smallIDs)
	if err != nil {
		return err
	}
	defer func() { _ = s.stop() }()
	c := newClient(s.url, b.cfg.clients+8)
	defer c.close()
	db := func(account, token string) *request {
		body, _ := json.Marshal(describeBackupsIn{MaxResults: 25, NextToken: token})
		return newRequest(account, "DescribeBackups", body)
	}
	var bids []string
	tok := ""
	for {
		var out describeBackupsOut
		if err := c.call(ctx, benchAccount, "DescribeBackups", describeBackupsIn{MaxResults: 25, NextToken: tok}, &out); err != nil {
			return err
		}
		for _, x := range out.Backups {
			bids = append(bids, x.BackupId)
		}
		if out.NextToken == "" {
			break
		}
		tok = out.NextToken
	}
	if len(bids) != n {
		return fmt.Errorf("the big account lists %d backups, want %d", len(bids), n)
	}
	if err := b.compare(ctx, c, "describebackups", db(smallAccount, ""), db(benchAccount, ""), db(benchAccount, tok)); err != nil {
		return err
	}
	if m, err := readMemory(s.pid()); err == nil {
		line("rss-with-backups", "clusters", n, "backups", n, "rss_mb", mb(m.rss))
	}
	return nil
}

// backupEstate starts a server on the copy of the estate that also holds a
// backup per cluster, making the copy first when it is missing.
func (b *bench) backupEstate(ctx context.Context, ids, smallIDs []string) (*server, error) {
	n := b.cfg.clusters
	bdir := b.cfg.estateDir + "-backups"
	var bmk estateMarker
	if raw, err := os.ReadFile(filepath.Join(bdir, markerName)); err == nil {
		_ = json.Unmarshal(raw, &bmk)
	}
	if bmk.Clusters == n && bmk.Backups {
		return b.start(ctx, "estate-backups", "--data-dir", bdir)
	}
	if err := copyEstate(b.cfg.estateDir, bdir); err != nil {
		return nil, fmt.Errorf("copy the estate for backups: %w", err)
	}
	s, err := b.start(ctx, "estate-backups", "--data-dir", bdir)
	if err != nil {
		return nil, err
	}
	c := newClient(s.url, b.cfg.clients+8)
	how, err := b.importBackups(ctx, s, c, bdir, ids, smallIDs)
	c.close()
	if err != nil {
		return nil, fmt.Errorf("import backups: %w", err)
	}
	raw, _ := json.Marshal(estateMarker{Clusters: n, Backups: true})
	if err := os.WriteFile(filepath.Join(bdir, markerName), raw, 0o644); err != nil {
		return nil, err
	}
	line("backups-import", "backups", n+25, "via", how)
	if how == "in-process" {
		// The server was stopped for the import: start it again.
		return b.start(ctx, "estate-backups", "--data-dir", bdir)
	}
	return s, nil
}

// importBackups adds backups to the estate copy in dir: through the admin API's import
// when the server has one, else with the server stopped, through the
// domain's Import on the data directory (an internal API of this module).
func (b *bench) importBackups(ctx context.Context, s *server, c *client, dir string, ids, smallIDs []string) (string, error) {
	backup := func(account, cluster string) *cloudhsm.Backup {
		return &cloudhsm.Backup{Tenant: cloudhsm.Tenant{Account: account, Region: region}, ClusterID: cluster, State: cloudhsm.BackupReady}
	}
	var big, small []*cloudhsm.Backup
	for i := range ids {
		big = append(big, backup(benchAccount, ids[i]))
	}
	for _, id := range smallIDs {
		small = append(small, backup(smallAccount, id))
	}
	// Version 1 of the snapshot format (docs/snapshot-format.md), which
	// servers before and after version 2 read alike.
	type v1Backup struct {
		Tenant    struct{ Account, Region string }
		ClusterID string
		State     string
	}
	v1 := func(bs []*cloudhsm.Backup) []byte {
		out := make([]v1Backup, len(bs))
		for i, b := range bs {
			out[i].Tenant.Account, out[i].Tenant.Region = b.Tenant.Account, b.Tenant.Region
			out[i].ClusterID, out[i].State = b.ClusterID, b.State
		}
		body, _ := json.Marshal(map[string]any{"version": 1, "clusters": []any{}, "backups": out})
		return body
	}
	if st, _, err := c.post(ctx, "_cloudhsm-local/import", v1(nil)); err == nil && st == 200 {
		all := append(big, small...)
		for i := 0; i < len(all); i += 10000 {
			body := v1(all[i:min(i+10000, len(all))])
			st, out, err := c.post(ctx, "_cloudhsm-local/import", body)
			if err != nil {
				return "", err
			}
			if st != 200 {
				return "", fmt.Errorf("admin import: HTTP %d: %.300s", st, out)
			}
		}
		return "admin-api", nil
	}
	if err := s.stop(); err != nil {
		return "", err
	}
	srv, err := srvpkg.New(srvpkg.Config{DataDir: dir, Domain: cloudhsm.DefaultConfig()})
	if err != nil {
		return "", err
	}
	// Oldest first: the small account's backups go last, so that both
	// accounts' pages hold backups of the same shape.
	err = srv.Service().Import(&cloudhsm.Snapshot{Backups: append(big, small...)})
	if cerr := srv.Close(); err == nil {
		err = cerr
	}
	return "in-process", err
}

// copyEstate replaces dst with a copy of the stopped estate's files in src.
func copyEstate(src, dst string) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == markerName {
			continue
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
