// Package postgres owns the PostgreSQL store: a store.Shared that several
// cloudhsm-local processes (replicas) open on one database to serve one
// estate. It owns the schema (numbered migrations embedded in the binary,
// applied at start under an advisory lock), the estate's versions and
// lock, the lease for timed work, the purge of tombstones, and copying an
// estate between stores. It knows nothing of clusters: records are opaque
// bytes, as in every store.
//
// The estate's single row in table estate numbers the committed states and
// its row lock is the estate's lock. Exclusive and Submit take it first
// (SELECT ... FOR UPDATE or UPDATE), so writers of every process serialize
// on it; Refresh reads without it, in one REPEATABLE READ snapshot.
// Records carry the version that last wrote them; a deletion is a
// tombstone (a null value) until the lease holder purges it.
package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// Options tunes Open. The zero value selects the defaults.
type Options struct {
	// MaxConns caps the connections of the pool (the lease holds one more
	// of its own). Default 8.
	MaxConns int32
	// Timeout bounds each commit of Submit's groups (Submit has no
	// context) and the connection of the lease. Default 10 s.
	Timeout time.Duration
	// LoadTimeout bounds Load (which has no context). Default 5 min.
	LoadTimeout time.Duration
	// LeaseEvery is how often a process that does not hold the lease
	// tries to take it, and the holder checks that its connection lives.
	// Default 1 s.
	LeaseEvery time.Duration
	// TombstoneTTL is how long a deletion stays visible to Refresh before
	// the lease holder purges it; a process that has not refreshed for
	// longer reloads the whole estate. Default 10 min.
	TombstoneTTL time.Duration
	// PurgeEvery is how often the lease holder purges tombstones. Default
	// 1 min.
	PurgeEvery time.Duration
	// IdleInTransaction is how long the server lets a session hold a
	// transaction without a statement before it ends the session (a
	// process frozen while it holds the estate's lock). Default 10 s.
	IdleInTransaction time.Duration
	// Logger receives the store's events (lease taken or lost, purges).
	// Default: discarded.
	Logger *slog.Logger
}

func (o *Options) defaults() error {
	if o.MaxConns < 0 || o.Timeout < 0 || o.LoadTimeout < 0 || o.LeaseEvery < 0 ||
		o.TombstoneTTL < 0 || o.PurgeEvery < 0 || o.IdleInTransaction < 0 {
		return fmt.Errorf("negative Options field: %+v", *o)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if o.MaxConns == 0 {
		o.MaxConns = 8
	}
	def(&o.Timeout, 10*time.Second)
	def(&o.LoadTimeout, 5*time.Minute)
	def(&o.LeaseEvery, time.Second)
	def(&o.TombstoneTTL, 10*time.Minute)
	def(&o.PurgeEvery, time.Minute)
	def(&o.IdleInTransaction, 10*time.Second)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Store is one process's connection to an estate in PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
	opts Options
	log  *slog.Logger

	// base is cancelled by Close: it ends the lease and Load.
	base   context.Context
	cancel context.CancelFunc
	closed atomic.Bool

	leader    atomic.Bool
	leaseDone chan struct{}

	committer
	closeOnce sync.Once
	closeErr  error
}

var _ store.Shared = (*Store)(nil)

// Open connects to the database at url, brings its schema up to date
// (refusing a schema newer than this binary knows, with an error wrapping
// ErrSchemaTooNew), and starts the lease and the committer of Submit.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if err := opts.defaults(); err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: the database URL: %w", err)
	}
	switch cfg.ConnConfig.DefaultQueryExecMode {
	case pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol:
		return nil, fmt.Errorf("postgres: open: default_query_exec_mode=%s: the store needs binary results; use cache_statement (the default), cache_describe or describe_exec", cfg.ConnConfig.DefaultQueryExecMode)
	}
	cfg.MaxConns = opts.MaxConns
	cfg.MinConns = 1 // a connection ready for the first request after a lull
	tuneConn(cfg.ConnConfig.RuntimeParams, opts)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", redact(cfg), err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", redact(cfg), err)
	}
	s := &Store{pool: pool, opts: opts, log: opts.Logger, leaseDone: make(chan struct{})}
	s.base, s.cancel = context.WithCancel(context.Background())
	s.committer.init(s)
	go s.lease()
	return s, nil
}

// tuneConn sets the session parameters of every connection.
func tuneConn(params map[string]string, opts Options) {
	if params["application_name"] == "" {
		params["application_name"] = "cloudhsm-local"
	}
	params["idle_in_transaction_session_timeout"] = fmt.Sprint(opts.IdleInTransaction.Milliseconds())
	// Compiling a whole-estate read (JIT) costs tens of milliseconds and
	// saves nothing on reads that only copy rows out.
	params["jit"] = "off"
}

// redact names the database without its password, for messages.
func redact(cfg *pgxpool.Config) string {
	c := cfg.ConnConfig
	return fmt.Sprintf("postgres://%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// Close flushes the groups submitted so far, gives the lease up and
// closes the connections. It is safe to call more than once; every call
// returns the same error.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.closeErr = s.committer.close()
		s.cancel()
		<-s.leaseDone
		s.pool.Close()
	})
	return s.closeErr
}

// errClosed is returned by the calls made after Close.
func (s *Store) errClosed(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrClosed)
	}
	return nil
}

// Ping reports whether the database answers, within ctx.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.errClosed("ping"); err != nil {
		return err
	}
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Leader reports whether this process holds the estate's lease for timed
// work (a session advisory lock on a connection of its own).
func (s *Store) Leader() bool { return s.leader.Load() }

// Redact returns a database URL fit to print: its password, if any,
// replaced (in a URL or in a key=value connection string).
func Redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		return u.String()
	}
	return passwordField.ReplaceAllString(dsn, "password=xxxxx")
}

var passwordField = regexp.MustCompile(`password=\S+`)
