// Package server assembles a cloudhsm-local server from its parts: the
// store, the network provider, the domain service, the CloudHSM v2 API on
// the AWS JSON wire, and the admin API, behind one http.Handler. Both the
// binary and the public cloudhsmlocal package start servers through it.
package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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
	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// Config is everything a server needs to start.
type Config struct {
	// DataDir holds the embedded store; ignored when InMemory.
	DataDir  string
	InMemory bool
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
	// SeedFile, when set, is a snapshot (the admin API's export format)
	// imported at startup into a server that holds no clusters or backups.
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
	// 0: DefaultConsoleStreams). They do not count against the
	// listener's --max-connections (see LimitListener).
	ConsoleStreams int
}

// DefaultAccount is the account used for non-numeric access keys.
const DefaultAccount = "123456789012"

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
}

// New opens the store and starts the domain service.
func New(cfg Config) (*Server, error) {
	if cfg.DefaultAccount == "" {
		cfg.DefaultAccount = DefaultAccount
	}
	if cfg.DefaultRegion == "" {
		cfg.DefaultRegion = "us-east-1"
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
	var seed *cloudhsm.Snapshot
	if cfg.SeedFile != "" {
		// Read before opening anything: a broken seed file fails fast.
		snap, err := ReadSnapshot(cfg.SeedFile)
		if err != nil {
			return nil, fmt.Errorf("seed %s: %w", cfg.SeedFile, err)
		}
		seed = snap
	}
	var st store.Store
	if cfg.InMemory {
		st = store.NewMemory()
	} else {
		if cfg.DataDir == "" {
			return nil, errors.New("a data directory is required unless running in memory")
		}
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
		b, err := store.OpenBolt(filepath.Join(cfg.DataDir, "state.db"), store.BoltOptions{})
		if err != nil {
			return nil, err
		}
		st = b
	}
	if cfg.TopologyFile != "" && cfg.EC2 != nil {
		st.Close()
		return nil, errors.New("a topology file and an EC2 endpoint cannot both declare the subnets: choose one")
	}
	var net network.Provider
	if cfg.EC2 != nil {
		ec2cfg := *cfg.EC2
		if ec2cfg.Logger == nil {
			ec2cfg.Logger = cfg.Logger
		}
		net = network.NewEC2(ec2cfg)
	} else if cfg.TopologyFile != "" {
		topo, err := network.LoadTopology(cfg.TopologyFile)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("topology: %w", err)
		}
		net = topo
	} else {
		net = network.NewLearned(cloudhsm.SubnetPlacements(st, records.Codec{}))
	}
	identities := cfg.Identities
	if h := cfg.KeyHelper; identities == nil && len(h) > 0 {
		identities = func() pki.IdentitySource { return pki.StartIdentityProcess(cfg.Logger, h[0], h[1:]...) }
	}
	svc, err := cloudhsm.New(cloudhsm.Options{Codec: records.Codec{}, Config: cfg.Domain, Clock: cfg.Clock, Store: st, Network: net, Logger: cfg.Logger, Identities: identities})
	if err != nil {
		st.Close()
		return nil, err
	}
	a, err := api.New(svc)
	if err != nil {
		svc.Close()
		st.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, store: st, svc: svc, log: cfg.Logger}
	if cfg.Credentials != nil {
		s.verifier = &sigv4.Verifier{Creds: cfg.Credentials, Service: "cloudhsm", Now: cfg.Clock.Now, ValidRegion: cloudhsm.KnownRegion}
	}
	if seed != nil {
		if err := s.seed(cfg.SeedFile, seed); err != nil {
			svc.Close()
			st.Close()
			return nil, fmt.Errorf("seed %s: %w", cfg.SeedFile, err)
		}
	}
	ops := a.Operations()
	names := make([]string, 0, len(ops))
	for name := range ops {
		names = append(names, name)
	}
	s.metrics = metrics.New(svc.Stats)
	s.faults = faults.New(faults.Options{
		Operations: names,
		Seed:       cfg.FaultSeed,
		Logger:     cfg.Logger,
		OnInject:   s.metrics.InjectedFault,
	})
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
		Service:        svc,
		Faults:         s.faults,
		Logger:         cfg.Logger,
		DefaultAccount: cfg.DefaultAccount,
		DefaultRegion:  cfg.DefaultRegion,
		Token:          cfg.AdminToken,
		AllowedHosts:   cfg.AllowedHosts,
	})
	s.console, err = console.New(console.Options{Service: svc, Invoke: wire.Invoke, Admin: adm, Faults: s.faults, Requests: requests,
		Logger: cfg.Logger, DefaultAccount: cfg.DefaultAccount, DefaultRegion: cfg.DefaultRegion, MaxStreams: cfg.ConsoleStreams, TopologyFile: cfg.TopologyFile})
	if err != nil {
		svc.Close()
		st.Close()
		return nil, err
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
	return s, nil
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
	if err := s.svc.Import(snap); err != nil {
		return err
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

// ReadSnapshot reads a snapshot document (the admin API's export format)
// strictly: unknown fields are refused, so typos in hand-written seed files
// do not pass silently.
func ReadSnapshot(path string) (*cloudhsm.Snapshot, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var snap cloudhsm.Snapshot
	if err := dec.Decode(&snap); err != nil {
		return nil, fmt.Errorf("decode snapshot: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decode snapshot: more than one JSON value")
	}
	if err := admin.CheckSnapshot(&snap); err != nil {
		return nil, err
	}
	return &snap, nil
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
	s.console.Close()
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
	if s.cfg.InMemory {
		return "in memory (nothing is written to disk)"
	}
	return strings.TrimSpace(filepath.Join(s.cfg.DataDir, "state.db"))
}
