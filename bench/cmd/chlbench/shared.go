package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// The shared scenario measures replicas of one PostgreSQL estate beside the
// embedded store, in one run, on the machine that runs PostgreSQL and the
// load generator too (issue 18's targets):
//
//   - DescribeClusters (a 25-cluster page), two replicas together, at
//     least 30 % of the embedded store's single-process rate;
//   - durable CreateCluster from 32 clients over 8 accounts, each request
//     to the next replica: at least 1,000 per second;
//   - a replica starting on a database holding --clusters clusters (copied
//     from the estate the startup scenario builds) answers its first
//     request within 2 s, within 2 KB of memory per cluster.
//
// --pg-url names a PostgreSQL server's maintenance database (postgres://
// user@host:port/postgres) on which chlbench may create databases.

// newDatabase creates an empty database on the server of adminURL and
// returns its URL; drop removes it.
func newDatabase(ctx context.Context, adminURL, name string) (dbURL string, drop func(), err error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("connect to %s: %w", adminURL, err)
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0"); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop = func() {
		c, err := pgx.Connect(context.Background(), adminURL)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	}
	return u.String(), drop, nil
}

func (b *bench) shared(ctx context.Context) error {
	if b.cfg.pgURL == "" {
		b.targetNA("shared_read_vs_embedded", ">=0.30", "no --pg-url")
		b.targetNA("shared_creates_per_s", ">=1000/s", "no --pg-url")
		b.sharedStartupNA("no --pg-url")
		return nil
	}
	if err := b.sharedRead(ctx); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if err := b.sharedWrite(ctx); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return b.sharedStartup(ctx)
}

// replicaPair starts two replicas on a new database.
func (b *bench) replicaPair(ctx context.Context, name string) ([]*server, func(), error) {
	dbURL, drop, err := newDatabase(ctx, b.cfg.pgURL, "chlbench_"+name)
	if err != nil {
		return nil, nil, err
	}
	var rs []*server
	for i := range 2 {
		s, err := b.start(ctx, fmt.Sprintf("%s-%d", name, i), "--database-url", dbURL, "--log-level", "warn")
		if err != nil {
			drop()
			return nil, nil, err
		}
		rs = append(rs, s)
	}
	return rs, func() {
		for _, s := range rs {
			_ = s.stop()
		}
		drop()
	}, nil
}

// readLoad runs the closed loop of DescribeClusters over clients, worker w
// on clients[w%len], and returns the merged figures.
func (b *bench) readLoad(ctx context.Context, clients []*client, dur time.Duration) *result {
	req := newRequest(benchAccount, "DescribeClusters", describePage)
	parts := make([]*result, len(clients))
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range clients {
		wg.Go(func() {
			parts[i] = closedLoop(ctx, c, b.cfg.clients/len(clients), dur, func(int, int) *request { return req })
		})
	}
	wg.Wait()
	return merge(parts, time.Since(start))
}

func (b *bench) sharedRead(ctx context.Context) error {
	// The embedded store, on disk.
	emb, err := b.start(ctx, "shared-embedded", "--data-dir", filepath.Join(b.cfg.workDir, "shared-embedded"), "--log-level", "warn")
	if err != nil {
		return err
	}
	ec := newClient(emb.url, 128)
	if err := seedLikeSeedPy(ctx, ec, benchAccount, 25); err != nil {
		return err
	}
	if err := waitSettled(ctx, ec, benchAccount); err != nil {
		return err
	}
	b.readLoad(ctx, []*client{ec}, b.cfg.dur/5) // warm up
	embedded := b.readLoad(ctx, []*client{ec}, b.cfg.dur)
	ec.close()
	_ = emb.stop()
	if err := embedded.err(); err != nil {
		return err
	}
	// Two replicas of one PostgreSQL estate.
	rs, done, err := b.replicaPair(ctx, "read")
	if err != nil {
		return err
	}
	defer done()
	cs := []*client{newClient(rs[0].url, 64), newClient(rs[1].url, 64)}
	defer cs[0].close()
	defer cs[1].close()
	if err := seedLikeSeedPy(ctx, cs[0], benchAccount, 25); err != nil {
		return err
	}
	if err := waitSettled(ctx, cs[1], benchAccount); err != nil {
		return err
	}
	b.readLoad(ctx, cs, b.cfg.dur/5)
	shared := b.readLoad(ctx, cs, b.cfg.dur)
	if err := shared.err(); err != nil {
		return err
	}
	ratio := shared.rps() / embedded.rps()
	line("shared-read", "embedded_rps", f0(embedded.rps()), "two_replicas_rps", f0(shared.rps()), "ratio", f2(ratio),
		"embedded_p99_ms", ms(embedded.pct(0.99)), "replicas_p99_ms", ms(shared.pct(0.99)), "clients", b.cfg.clients)
	b.target("shared_read_vs_embedded", f2(ratio), ">=0.30", ratio >= 0.30, "DescribeClusters, 25-cluster page, "+strconv.Itoa(b.cfg.clients)+" clients; PostgreSQL, replicas and load on the same machine")
	return nil
}

func (b *bench) sharedWrite(ctx context.Context) error {
	rs, done, err := b.replicaPair(ctx, "write")
	if err != nil {
		return err
	}
	defer done()
	cs := []*client{newClient(rs[0].url, 32), newClient(rs[1].url, 32)}
	defer cs[0].close()
	defer cs[1].close()
	const accounts = 8
	subnet := func(w, i int) []string {
		return []string{fmt.Sprintf("subnet-%08x%09x", w, 0), fmt.Sprintf("subnet-%08x%09x", w, 1)}
	}
	bodies := make([][]byte, b.cfg.writeClients)
	for w := range bodies {
		bodies[w] = createBody(subnet(w, 0), "w")
	}
	reqFor := func(w, i int) *request {
		return newRequest(fmt.Sprintf("5555555555%02d", w%accounts), "CreateCluster", bodies[w])
	}
	parts := make([]*result, b.cfg.writeClients)
	var wg sync.WaitGroup
	deadline := time.Now().Add(b.cfg.dur)
	start := time.Now()
	for w := range b.cfg.writeClients {
		wg.Go(func() {
			p := &result{}
			parts[w] = p
			for i := 0; ctx.Err() == nil && time.Now().Before(deadline); i++ {
				t := time.Now()
				// Each request to the next replica, as a round-robin
				// balancer sends them.
				if err := cs[(w+i)%2].send(ctx, reqFor(w, i)); err != nil {
					p.errs++
					if p.firstErr == nil {
						p.firstErr = err
					}
					continue
				}
				p.lat = append(p.lat, time.Since(t))
				p.n++
			}
		})
	}
	wg.Wait()
	r := merge(parts, time.Since(start))
	if err := r.err(); err != nil {
		return err
	}
	line("shared-write", "creates_per_s", f0(r.rps()), "clients", b.cfg.writeClients, "accounts", accounts, "p50_ms", ms(r.pct(0.5)), "p99_ms", ms(r.pct(0.99)))
	b.target("shared_creates_per_s", f0(r.rps())+"/s", ">=1000/s", r.rps() >= 1000, "durable CreateCluster, 32 clients over 8 accounts, round robin over two replicas")
	return nil
}

func (b *bench) sharedStartup(ctx context.Context) error {
	n := b.cfg.clusters
	var mk estateMarker
	if raw, err := os.ReadFile(filepath.Join(b.cfg.estateDir, markerName)); err == nil {
		_ = json.Unmarshal(raw, &mk)
	}
	if mk.Clusters != n {
		b.sharedStartupNA("no estate of " + strconv.Itoa(n) + " clusters in " + b.cfg.estateDir + " (run the startup scenario first)")
		return nil
	}
	dbURL, drop, err := newDatabase(ctx, b.cfg.pgURL, "chlbench_estate")
	if err != nil {
		return err
	}
	defer drop()
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, b.cfg.bin, "copy-estate", "--from", b.cfg.estateDir, "--to", dbURL).CombinedOutput()
	if err != nil {
		return fmt.Errorf("copy-estate: %v: %s", err, out)
	}
	copied := time.Since(t0)
	// An idle replica on an empty database, for the memory baseline.
	emptyURL, dropEmpty, err := newDatabase(ctx, b.cfg.pgURL, "chlbench_empty")
	if err != nil {
		return err
	}
	defer dropEmpty()
	idle, err := b.start(ctx, "shared-idle", "--database-url", emptyURL, "--log-level", "warn")
	if err != nil {
		return err
	}
	time.Sleep(time.Second) // settle before reading memory
	idleMem, err := readMemory(idle.pid())
	_ = idle.stop()
	if err != nil {
		return err
	}
	s, err := b.start(ctx, "shared-estate", "--database-url", dbURL, "--log-level", "warn")
	if err != nil {
		return err
	}
	defer func() { _ = s.stop() }()
	time.Sleep(time.Second)
	full, err := readMemory(s.pid())
	if err != nil {
		return err
	}
	perCluster := (full.rss - idleMem.rss) / int64(n)
	line("shared-startup", "clusters", n, "copy_s", f2(copied.Seconds()), "first_answer_ms", ms(s.startup), "listening_line_ms", ms(s.listening),
		"idle_rss_mb", mb(idleMem.rss), "rss_mb", mb(full.rss), "bytes_per_cluster", perCluster)
	if n < 100000 {
		// A start-up on a few clusters says nothing of the target's.
		b.sharedStartupNA("only " + strconv.Itoa(n) + " clusters")
		return nil
	}
	b.target("shared_startup_100k", ms(s.startup)+"ms", sharedStartupLimit, s.startup <= 2*time.Second, "a replica on a database of "+strconv.Itoa(n)+" clusters, from exec to the first answered DescribeClusters")
	b.target("shared_rss_per_cluster", strconv.FormatInt(perCluster, 10)+"B", sharedRSSLimit, perCluster <= 2048, "(VmRSS with "+strconv.Itoa(n)+" - VmRSS on an empty database)/"+strconv.Itoa(n))
	return nil
}

// The limits of the shared start-up's targets, as printed.
const (
	sharedStartupLimit = "<=2000ms"
	sharedRSSLimit     = "<=2048B"
)

// sharedStartupNA reports the shared start-up's targets as not measured.
func (b *bench) sharedStartupNA(why string) {
	b.targetNA("shared_startup_100k", sharedStartupLimit, why)
	b.targetNA("shared_rss_per_cluster", sharedRSSLimit, why)
}
