// Package server assembles a cloudhsm-local server from its parts: the
// store, the network provider, the domain service, the CloudHSM v2 API on
// the AWS JSON wire, and the admin API, behind one http.Handler. Both the
// binary and the public cloudhsmlocal package start servers through it.
package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/admin"
	"github.com/cloudhsm-local/cloudhsm-local/internal/api"
	"github.com/cloudhsm-local/cloudhsm-local/internal/awsjson"
	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
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
}

// New opens the store and starts the domain service.
func New(cfg Config) (*Server, error) {
	if cfg.DefaultAccount == "" {
		cfg.DefaultAccount = DefaultAccount
	}
	if cfg.DefaultRegion == "" {
		cfg.DefaultRegion = "us-east-1"
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.New()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
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
	var net network.Provider
	if cfg.TopologyFile != "" {
		topo, err := network.LoadTopology(cfg.TopologyFile)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("topology: %w", err)
		}
		net = topo
	} else {
		net = network.NewLearned(cloudhsm.PersistSubnet(st))
	}
	svc, err := cloudhsm.New(cloudhsm.Options{Config: cfg.Domain, Clock: cfg.Clock, Store: st, Network: net, Logger: cfg.Logger})
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
	wire := awsjson.NewServer(a.Operations(), awsjson.Hooks{
		Authenticate: s.authenticate,
		LogAttrs: func(caller any) []slog.Attr {
			c := caller.(*api.Caller)
			return []slog.Attr{slog.String("account", c.Tenant.Account), slog.String("region", c.Tenant.Region)}
		},
	}, cfg.Logger)
	mux := http.NewServeMux()
	mux.Handle(admin.Prefix, admin.New(svc, cfg.Logger))
	mux.Handle("/", wire)
	s.handler = mux
	return s, nil
}

// Handler returns the HTTP handler serving both APIs.
func (s *Server) Handler() http.Handler { return s.handler }

// Service returns the domain service.
func (s *Server) Service() *cloudhsm.Service { return s.svc }

// Close stops the scheduler and closes the store.
func (s *Server) Close() error {
	s.svc.Close()
	return s.store.Close()
}

var accountID = regexp.MustCompile(`^[0-9]{12}$`)

// authenticate is the permissive mode: any signature is accepted; the
// region comes from the credential scope, the account from the access key.
func (s *Server) authenticate(r *http.Request, body []byte) (any, error) {
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
		return nil, awsjson.Errorf(awsjson.CodeUnrecognizedClient, "The security token included in the request is invalid: region '%s' in the credential scope is not an AWS region.", scope.Region)
	}
	account := s.cfg.DefaultAccount
	if accountID.MatchString(scope.AccessKeyID) {
		account = scope.AccessKeyID
	}
	return &api.Caller{Tenant: cloudhsm.Tenant{Account: account, Region: scope.Region}, AccessKeyID: scope.AccessKeyID}, nil
}

// Describe tells where a running server keeps its data, for the startup banner.
func (s *Server) Describe() string {
	if s.cfg.InMemory {
		return "in memory (nothing is written to disk)"
	}
	return strings.TrimSpace(filepath.Join(s.cfg.DataDir, "state.db"))
}

var _ = time.Second
