// Package server assembles a cloudhsm-local server from its parts: the
// store, the network provider, the domain service, the CloudHSM v2 API on
// the AWS JSON wire, the admin API and the console (with its request log),
// behind one http.Handler. Both the
// binary and the public cloudhsmlocal package start servers through it.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/admin"
	"github.com/cloudhsm-local/cloudhsm-local/internal/api"
	"github.com/cloudhsm-local/cloudhsm-local/internal/awsjson"
	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/console"
	"github.com/cloudhsm-local/cloudhsm-local/internal/faults"
	"github.com/cloudhsm-local/cloudhsm-local/internal/metrics"
	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
	"github.com/cloudhsm-local/cloudhsm-local/internal/pki"
	"github.com/cloudhsm-local/cloudhsm-local/internal/records"
	"github.com/cloudhsm-local/cloudhsm-local/internal/sigv4"
	"github.com/cloudhsm-local/cloudhsm-local/internal/snapshot"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store/postgres"
)

// Config is everything a server needs to start.
type Config struct {
	// DataDir holds the embedded store; ignored when InMemory.
	DataDir  string
	InMemory bool
	// Store, when set, is the store to serve the estate from instead
	// (DataDir and InMemory are then ignored): a store.Shared serves one
	// estate with other processes. The server closes it.
	Store store.Store
	// LocalClock, when set, is this process's clock as a shared store's
	// clock corrects it (tests of replicas whose hosts' clocks disagree).
	LocalClock func() time.Time
	// DatabaseURL, when set, keeps the estate in PostgreSQL (a shared
	// store: any number of servers on one database serve one estate);
	// DataDir and InMemory are then ignored.
	DatabaseURL string
	// TopologyFile, when set, declares the subnets instead of learning them.
	TopologyFile string
	// DefaultAccount is the account of callers whose access key id is not a
	// 12-digit account id.
	DefaultAccount string
	// DefaultRegion is used for unsigned requests.
	DefaultRegion string
	Domain        cloudhsm.Config
	// Clock, when nil, follows real time.
	Clock  *clock.Clock
	Logger *slog.Logger
	// AdminToken, when set, is required from every admin API caller as a
	// bearer token and lets non-loopback callers in.
	AdminToken string
	// SeedFile, when set, is a snapshot document (docs/snapshot-format.md,
	// any version) imported at startup into a server that holds no
	// clusters or backups.
	SeedFile string
	// Pprof mounts net/http/pprof under /debug/pprof/ (admin access rules apply).
	Pprof bool
	// KeyHelper, when set, is the command line of a helper process that
	// makes HSM keys and certificates at the lowest CPU priority (one whose
	// main calls pki.LowerPriority and pki.ServeIdentities), started when
	// the first HSM identity is needed (CreateHsm, or an import or seed
	// with HSMs). Empty: they are made in this process.
	KeyHelper []string
	// Identities, when set, makes the source of HSM identities instead
	// (KeyHelper is then ignored): for embedders and tests that need
	// control over when keys are ready.
	Identities func() pki.IdentitySource
	// FaultSeed seeds the fault injector's random source (0: random).
	FaultSeed uint64
	// Credentials, when set, turns on strict authentication: every request
	// must carry a valid SigV4 signature by one of these keys, and the
	// caller's account is the key's account.
	Credentials sigv4.Credentials
	// EC2, when set, looks subnets up in a neighbouring EC2 API (moto,
	// LocalStack) instead of learning them.
	EC2 *network.EC2Config
	// AllowedHosts are the Host names the admin API and the console answer
	// to (--allowed-hosts): on a loopback address besides localhost,
	// 127.0.0.1 and [::1]; elsewhere the only ones (none: any).
	AllowedHosts []string
	// RequestLog is how many API calls the console's request log keeps
	// (--request-log); 0 turns it off.
	RequestLog int
	// ConsoleStreams caps the console's live streams (--console-streams;
	// 0: console.DefaultMaxStreams). They do not count against the
	// listener's --max-connections (see LimitListener).
	ConsoleStreams int
}

// DefaultAccount is the account used for non-numeric access keys.
const DefaultAccount = cloudhsm.DefaultAccount

// Server is an assembled cloudhsm-local.
type Server struct {
	cfg     Config
	store   store.Store
	svc     *cloudhsm.Service
	handler http.Handler
	log     *slog.Logger
	faults  *faults.Injector
	metrics *metrics.Metrics
	seeded  *admin.ImportResult
	console *console.Console
	// verifier is set in strict mode.
	verifier *sigv4.Verifier
	// stopFollow stops following the estate's fault rules (shared stores).
	stopFollow func()
}

// New opens the store and starts the domain service.
func New(cfg Config) (*Server, error) {
	cfg = withDefaults(cfg)
	var seed *cloudhsm.Snapshot
	if cfg.SeedFile != "" {
		// Read before opening anything: a broken seed file fails fast.
		snap, err := readSeed(cfg.SeedFile)
		if err != nil {
			return nil, fmt.Errorf("seed %s: %w", cfg.SeedFile, err)
		}
		seed = snap
	}
	st, err := openStore(cfg)
	if err != nil {
		return nil, err
	}
	svc, err := newService(cfg, st)
	if err != nil {
		st.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, store: st, svc: svc, log: cfg.Logger}
	if cfg.Credentials != nil {
		s.verifier = &sigv4.Verifier{Creds: cfg.Credentials, Service: "cloudhsm", Now: cfg.Clock.Now, ValidRegion: cloudhsm.KnownRegion}
	}
	if seed != nil {
		if err := s.seed(cfg.SeedFile, seed); err != nil {
			s.Close()
			return nil, fmt.Errorf("seed %s: %w", cfg.SeedFile, err)
		}
	}
	if err := s.routes(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// withDefaults fills in what cfg leaves out.
func withDefaults(cfg Config) Config {
	if cfg.DefaultAccount == "" {
		cfg.DefaultAccount = DefaultAccount
	}
	if cfg.DefaultRegion == "" {
		cfg.DefaultRegion = cloudhsm.DefaultRegion
	}
	if cfg.Domain == (cloudhsm.Config{}) {
		cfg.Domain = cloudhsm.DefaultConfig()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.New()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// openStore opens the store cfg asks for: in memory, or the embedded
// durable store in the data directory.
func openStore(cfg Config) (store.Store, error) {
	if cfg.TopologyFile != "" && cfg.EC2 != nil {
		return nil, errors.New("a topology file and an EC2 endpoint cannot both declare the subnets: choose one")
	}
	if cfg.Store != nil {
		return cfg.Store, nil
	}
	if cfg.DatabaseURL != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st, err := postgres.Open(ctx, cfg.DatabaseURL, postgres.Options{Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("open the database: %w", err)
		}
		return st, nil
	}
	if cfg.InMemory {
		return store.NewMemory(), nil
	}
	if cfg.DataDir == "" {
		return nil, errors.New("a data directory is required unless running in memory")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	return store.OpenBolt(StateFile(cfg.DataDir), store.BoltOptions{})
}

// newNetwork returns the provider of subnets cfg asks for: a neighbouring
// EC2, a topology file, or subnets learned and kept in st.
func newNetwork(cfg Config, st store.Store) (network.Provider, error) {
	switch {
	case cfg.EC2 != nil:
		ec2cfg := *cfg.EC2
		if ec2cfg.Logger == nil {
			ec2cfg.Logger = cfg.Logger
		}
		return network.NewEC2(ec2cfg), nil
	case cfg.TopologyFile != "":
		topo, err := network.LoadTopology(cfg.TopologyFile)
		if err != nil {
			return nil, fmt.Errorf("topology: %w", err)
		}
		return topo, nil
	}
	return network.NewLearned(cloudhsm.SubnetPlacements(st, records.Codec{})), nil
}

// newService starts the domain on st.
func newService(cfg Config, st store.Store) (*cloudhsm.Service, error) {
	net, err := newNetwork(cfg, st)
	if err != nil {
		return nil, err
	}
	identities := cfg.Identities
	if h := cfg.KeyHelper; identities == nil && len(h) > 0 {
		identities = func() pki.IdentitySource { return pki.StartIdentityProcess(cfg.Logger, h[0], h[1:]...) }
	}
	return cloudhsm.New(cloudhsm.Options{Codec: records.Codec{}, Config: cfg.Domain, Clock: cfg.Clock, Store: st, Network: net, Logger: cfg.Logger, Identities: identities, LocalClock: cfg.LocalClock})
}

// routes assembles the handler: the CloudHSM API on the AWS JSON wire,
// the admin API, metrics and, when asked, pprof.
func (s *Server) routes() error {
	cfg := s.cfg
	a, err := api.New(s.svc)
	if err != nil {
		return err
	}
	ops := a.Operations()
	names := make([]string, 0, len(ops))
	for name := range ops {
		names = append(names, name)
	}
	s.metrics = metrics.New(s.svc.Stats)
	fo := faults.Options{
		Operations: names,
		Seed:       cfg.FaultSeed,
		Logger:     cfg.Logger,
		OnInject:   s.metrics.InjectedFault,
	}
	if s.svc.Shared() {
		fo.Ledger = keptFaults{s.svc}
	}
	s.faults = faults.New(fo)
	if fo.Ledger != nil {
		if err := s.followFaults(); err != nil {
			return err
		}
	}
	hooks := awsjson.Hooks{
		Authenticate: s.authenticate,
		Before:       s.before,
		Observe:      s.metrics.Observe,
		LogAttrs: func(caller any, attrs []slog.Attr) []slog.Attr {
			c := caller.(*api.Caller)
			return append(attrs, slog.String("account", c.Tenant.Account), slog.String("region", c.Tenant.Region))
		},
	}
	requests := console.NewRequestLog(cfg.RequestLog)
	if requests != nil {
		hooks.Record = requests.Record
	}
	wire := awsjson.NewServer(ops, hooks, cfg.Logger)
	adm := admin.New(admin.Options{
		Service:        s.svc,
		Faults:         s.faults,
		Logger:         cfg.Logger,
		DefaultAccount: cfg.DefaultAccount,
		DefaultRegion:  cfg.DefaultRegion,
		Token:          cfg.AdminToken,
		AllowedHosts:   cfg.AllowedHosts,
	})
	s.console, err = console.New(console.Options{Service: s.svc, Invoke: wire.Invoke, Admin: adm, Faults: s.faults, Requests: requests,
		Logger: cfg.Logger, DefaultAccount: cfg.DefaultAccount, DefaultRegion: cfg.DefaultRegion, MaxStreams: cfg.ConsoleStreams, TopologyFile: cfg.TopologyFile})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(admin.Prefix, adm)
	mux.Handle(console.Prefix, s.console)
	mux.Handle("GET /metrics", s.metrics.Handler())
	if cfg.Pprof {
		mux.Handle("/debug/pprof/", adm.Guard(http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/cmdline", adm.Guard(http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("/debug/pprof/profile", adm.Guard(http.HandlerFunc(pprof.Profile)))
		mux.Handle("/debug/pprof/symbol", adm.Guard(http.HandlerFunc(pprof.Symbol)))
		mux.Handle("/debug/pprof/trace", adm.Guard(http.HandlerFunc(pprof.Trace)))
	}
	mux.Handle("/", browsersToConsole(wire))
	s.handler = mux
	return nil
}

// keptFaults keeps the fault rules with a shared estate, so that every
// replica applies them and counted rules count the estate's calls.
type keptFaults struct{ svc *cloudhsm.Service }

const faultsKept = "faults"

func (k keptFaults) Change(fn func([]byte) ([]byte, error)) ([]byte, error) {
	return k.svc.ChangeKept(faultsKept, fn)
}

// followFaults loads the estate's fault rules and follows the changes
// other replicas make to them, until the server closes.
func (s *Server) followFaults() error {
	if err := s.faults.Replace(s.svc.Kept(faultsKept)); err != nil {
		return err
	}
	sub := s.svc.Feed().Subscribe(256)
	s.stopFollow = sub.Close
	go func() {
		missed := int64(0)
		for c := range sub.C {
			if (c.Resource == cloudhsm.ResourceKept && c.ID == faultsKept) || c.Resource == cloudhsm.ResourceEstate || sub.Missed() != missed {
				missed = sub.Missed()
				if err := s.faults.Replace(s.svc.Kept(faultsKept)); err != nil {
					s.log.Error("load the estate's fault rules", "err", err)
				}
			}
		}
	}()
	return nil
}

// ConsoleURL is the console's path on the server's listener, for the
// startup banner.
const ConsoleURL = console.Prefix

// browsersToConsole sends a browser's GET / (an Accept that prefers HTML)
// to the console; everything else (AWS clients POST) goes to the API.
func browsersToConsole(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Path == "/" && prefersHTML(r.Header.Get("Accept")) {
			http.Redirect(w, r, console.Prefix, http.StatusFound)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// prefersHTML reports whether an Accept header names text/html with a
// weight no other type it names exceeds (*/* alone does not count).
func prefersHTML(accept string) bool {
	html, best := -1.0, 0.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "q") {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					q = f
				}
			}
		}
		switch mt = strings.ToLower(strings.TrimSpace(mt)); {
		case mt == "text/html":
			html = max(html, q)
		case mt != "*/*" && mt != "":
			best = max(best, q)
		}
	}
	return html > 0 && html >= best
}

// before is the wire's Before hook: fault injection.
func (s *Server) before(ctx context.Context, req *awsjson.Request) error {
	call := faults.Call{Operation: req.Operation, Delay: req.Delay}
	if c, ok := req.Caller.(*api.Caller); ok {
		call.Account, call.Region = c.Tenant.Account, c.Tenant.Region
	}
	return s.faults.Inject(ctx, call)
}

// seed imports the snapshot read from path into a server that holds nothing yet;
// a server with state (a durable store from an earlier run) is left alone,
// so restarts with the same --seed neither duplicate nor overwrite.
func (s *Server) seed(path string, snap *cloudhsm.Snapshot) error {
	st := s.svc.Stats()
	if n := total(st.Clusters) + total(st.Backups); n > 0 {
		s.log.Info("seed skipped: the store already holds resources", "seed", path, "resources", n)
		return nil
	}
	res := admin.Counts(snap)
	seeded, err := s.svc.Seed(snap)
	if err != nil {
		return err
	}
	if !seeded {
		s.log.Info("seed skipped: another process seeded the estate first", "seed", path)
		return nil
	}
	s.seeded = &res
	s.log.Info("seed imported", "seed", path, "clusters", res.Clusters, "hsms", res.Hsms, "backups", res.Backups)
	return nil
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// readSeed reads a seed file: a snapshot document of any version (see
// docs/snapshot-format.md), checked as the admin API's import checks one.
func readSeed(path string) (*cloudhsm.Snapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return snapshot.Decode(f)
}

// Handler returns the HTTP handler serving both APIs.
func (s *Server) Handler() http.Handler { return s.handler }

// Service returns the domain service.
func (s *Server) Service() *cloudhsm.Service { return s.svc }

// Faults returns the fault injector the admin API manages.
func (s *Server) Faults() *faults.Injector { return s.faults }

// Metrics returns the server's metrics (its own Prometheus registry).
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// Seeded reports what the seed file imported at startup (nil when no seed
// was imported).
func (s *Server) Seeded() *admin.ImportResult { return s.seeded }

// Close stops the scheduler and closes the store.
func (s *Server) Close() error {
	if s.stopFollow != nil {
		s.stopFollow()
	}
	if s.console != nil {
		s.console.Close()
	}
	s.svc.Close()
	return s.store.Close()
}

// isAccountID reports whether an access key id is a 12-digit account id.
func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// authenticate identifies the caller. In strict mode the signature must
// verify against a known key, whose account is the caller's.
func (s *Server) authenticate(r *http.Request, body []byte) (any, error) {
	if s.verifier != nil {
		cred, scope, err := s.verifier.Verify(r, body)
		if err != nil {
			var ae *sigv4.AuthError
			if errors.As(err, &ae) {
				return nil, &awsjson.Error{Code: ae.Code, Message: ae.Message}
			}
			return nil, err
		}
		return &api.Caller{Tenant: cloudhsm.Tenant{Account: cred.Account, Region: scope.Region}, AccessKeyID: cred.AccessKeyID}, nil
	}
	return s.permissive(r)
}

// permissive accepts any signature: the region comes from the credential
// scope, the account from the access key.
func (s *Server) permissive(r *http.Request) (any, error) {
	scope, err := sigv4.ParseScope(r)
	if errors.Is(err, sigv4.ErrNoCredentials) {
		return &api.Caller{Tenant: cloudhsm.Tenant{Account: s.cfg.DefaultAccount, Region: s.cfg.DefaultRegion}}, nil
	}
	if err != nil {
		var me *sigv4.MalformedError
		if errors.As(err, &me) {
			return nil, &awsjson.Error{Code: awsjson.CodeIncompleteSignature, Message: me.Reason}
		}
		return nil, err
	}
	if !cloudhsm.KnownRegion(scope.Region) {
		return nil, awsjson.Errorf(awsjson.CodeInvalidSignature, "Credential should be scoped to a valid region, not '%s'. ", scope.Region)
	}
	account := s.cfg.DefaultAccount
	if isAccountID(scope.AccessKeyID) {
		account = scope.AccessKeyID
	}
	return &api.Caller{Tenant: cloudhsm.Tenant{Account: account, Region: scope.Region}, AccessKeyID: scope.AccessKeyID}, nil
}

// Strict reports whether requests must carry valid signatures.
func (s *Server) Strict() bool { return s.verifier != nil }

// Describe tells where a running server keeps its data, for the startup banner.
func (s *Server) Describe() string {
	if s.cfg.DatabaseURL != "" {
		return "PostgreSQL at " + postgres.Redact(s.cfg.DatabaseURL) + " (an estate any number of replicas can share)"
	}
	if s.cfg.Store != nil {
		return "a store given by the embedder"
	}
	if s.cfg.InMemory {
		return "in memory (nothing is written to disk)"
	}
	return strings.TrimSpace(StateFile(s.cfg.DataDir))
}

// StateFile is the embedded store's file in a data directory.
func StateFile(dataDir string) string { return filepath.Join(dataDir, "state.db") }
