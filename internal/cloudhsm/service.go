package cloudhsm

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
	"github.com/cloudhsm-local/cloudhsm-local/internal/pki"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// Service owns the estate: every cluster, HSM and backup of every account
// and region, the rules that change them, and the timed transitions the
// clock makes due. It is safe for concurrent use.
//
// What it takes from the process is named in one place each: records go to
// a store.Store (persist.go), learned subnets to the network provider's
// network.Placements, ids and counters come from ids.go, the queue of due
// work is an agenda (scheduler.go), the values made once (the token secret
// and the simulated roots) come from madeOnce (roots.go), and the clock's
// offset is kept as a meta record (pending.clock). Every change is announced
// on Feed.
type Service struct {
	cfg    Config
	clock  *clock.Clock
	store  store.Store
	codec  Codec
	net    network.Provider
	authMu sync.Mutex
	auth   *pki.Authority // see Authority
	log    *slog.Logger

	mu      sync.RWMutex
	tenants map[Tenant]*tenantState
	ids     idRegistry
	// seq numbers records in creation order; versions numbers cluster
	// versions (see Cluster.Version): they only grow, also across Reset,
	// so that a cluster replaced by Import, or re-imported after a reset,
	// never has the version of an earlier cluster with its id, whose
	// cached views would then pass for its own.
	seq, versions counter
	agenda        agenda
	// loading is set while scheduleAll queues the loaded resources' events.
	loading bool
	// nextDue is the unix-nano time of the earliest event (MaxInt64 when none),
	// read without the lock to skip catch-up on the read path.
	nextDue atomic.Int64
	// subnetSets holds one shared, never-mutated copy of each distinct set
	// of subnets: clusters often share their subnets, and 100,000 clusters
	// would otherwise hold 100,000 copies.
	subnetSets map[string][][]network.Subnet
	meta       map[string]string
	// clockKept is the generation of the clock state last kept in the
	// store, clockMode whether it was frozen (see pending.clock).
	clockKept atomic.Uint64
	clockMode bool

	feed       Feed
	announceMu sync.Mutex // see unlockAndAnnounce

	// shared is the store when it is a store.Shared (see shared.go).
	shared store.Shared
	sh     sharedState

	newIdentities  func() pki.IdentitySource
	identitiesOnce sync.Once
	identitySource pki.IdentitySource
	// identities lets one HSM identity at a time be made (see newIdentity).
	identities chan struct{}
	// ifaces tracks the deletions of HSMs' network interfaces (interfaces.go).
	ifaces interfaces

	stop chan struct{}
	// wake tells the scheduler that the next due time moved earlier than
	// the one it sleeps until (buffered: one pending wake is enough).
	wake chan struct{}
	done chan struct{}
}

// identitySources returns the source of HSM identities, started on first
// use so that servers which never create an HSM spend no CPU on keys.
func (s *Service) identitySources() pki.IdentitySource {
	s.identitiesOnce.Do(func() {
		if s.newIdentities != nil {
			s.identitySource = s.newIdentities()
		} else {
			s.identitySource = pki.NewLocalIdentities()
		}
	})
	return s.identitySource
}

// Options are the collaborators of a Service.
type Options struct {
	// Codec encodes records for the store.
	Codec   Codec
	Config  Config
	Clock   *clock.Clock
	Store   store.Store
	Network network.Provider
	Logger  *slog.Logger
	// LocalClock, when set, is this process's clock, which a shared store's
	// clock corrects (tests of replicas whose hosts' clocks disagree).
	// Default: time.Now.
	LocalClock func() time.Time
	// Identities, when set, makes the source of HSM identities (keys and
	// certificates); it is called when the first identity is needed.
	// Default: made in this process (pki.NewLocalIdentities).
	Identities func() pki.IdentitySource
}

// New loads the estate from the store and returns a running Service. Call
// Close to stop its scheduler.
func New(opts Options) (*Service, error) {
	if opts.Codec == nil {
		return nil, errors.New("cloudhsm: Options.Codec is required")
	}
	s := &Service{
		cfg:           opts.Config,
		clock:         opts.Clock,
		store:         opts.Store,
		codec:         opts.Codec,
		net:           opts.Network,
		log:           opts.Logger,
		newIdentities: opts.Identities,
		sh:            sharedState{local: opts.LocalClock},
		tenants:       map[Tenant]*tenantState{},
		ids:           newIDRegistry(),
		agenda:        &eventHeap{},
		meta:          map[string]string{},
		identities:    make(chan struct{}, 1),
		stop:          make(chan struct{}),
		wake:          make(chan struct{}, 1),
		done:          make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.cfg.BackupInterval <= 0 {
		s.cfg.BackupInterval = 24 * time.Hour
	}
	if s.clock == nil {
		s.clock = clock.New()
	}
	if sh, ok := s.store.(store.Shared); ok {
		s.shared = sh
		s.clock.UseReal(s.storeClock())
		if err := s.loadShared(); err != nil {
			return nil, fmt.Errorf("load state: %w", err)
		}
	} else if err := s.load(); err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	if _, err := s.madeOnce(metaTokenSecret, newTokenSecret); err != nil {
		return nil, fmt.Errorf("token secret: %w", err)
	}
	s.scheduleAll()
	go s.run()
	return s, nil
}

// Close stops the scheduler and the retried deletions of network
// interfaces. It does not close the store.
func (s *Service) Close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.ifaces.close()
	s.identitiesOnce.Do(func() {})
	if s.identitySource != nil {
		s.identitySource.Close()
	}
}

// Clock returns the service clock. Changes made to it directly are kept
// with the estate at the next request or CatchUp; the clock methods of
// Service (AdvanceClock, FreezeClock, ResumeClock, RealTimeClock) keep them
// at once.
func (s *Service) Clock() *clock.Clock { return s.clock }

// Feed returns the feed of the estate's changes.
func (s *Service) Feed() *Feed { return &s.feed }
