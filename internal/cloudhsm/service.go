package cloudhsm

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
	"github.com/cloudhsm-local/cloudhsm-local/internal/pki"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// Service owns all state. It is safe for concurrent use.
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
	hsmIDs  map[string]bool // HSM ids in use anywhere
	events  eventHeap
	// nextDue is the unix-nano time of the earliest event (MaxInt64 when none),
	// read without the lock to skip catch-up on the read path.
	nextDue atomic.Int64
	// loading is set while scheduleAll queues the loaded resources' events.
	loading bool
	// subnetSets holds one shared, never-mutated copy of each distinct set
	// of subnets: clusters often share their subnets, and 100,000 clusters
	// would otherwise hold 100,000 copies.
	subnetSets map[string][][]network.Subnet
	seq        uint64
	// version is the last Cluster.Version given out. It only grows, also
	// across Reset, and starts above every loaded cluster's: a cluster
	// replaced by Import, or re-imported after a reset, never has the
	// version of an earlier cluster with its id, whose cached views would
	// then pass for its own.
	version uint64
	meta    map[string]string

	newIdentities  func() pki.IdentitySource
	identitiesOnce sync.Once
	identitySource pki.IdentitySource
	// identities lets one HSM identity at a time be made (see newIdentity).
	identities chan struct{}

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

// Codec turns clusters and backups into the store's records and back; the
// domain does not know the format. DecodeOwned* may keep the bytes given.
type Codec interface {
	EncodeCluster(*Cluster) []byte
	DecodeOwnedCluster([]byte) (*Cluster, error)
	EncodeBackup(*Backup) []byte
	DecodeOwnedBackup([]byte) (*Backup, error)
	EncodeSubnet(Tenant, network.Subnet) ([]byte, error)
	DecodeSubnet([]byte) (Tenant, network.Subnet, error)
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
	// Identities, when set, makes the source of HSM identities (keys and
	// certificates); it is called when the first identity is needed.
	// Default: made in this process (pki.NewLocalIdentities).
	Identities func() pki.IdentitySource
}

// New loads the state from the store and returns a running Service. Call
// Close to stop its scheduler.
func New(opts Options) (*Service, error) {
	s := &Service{
		cfg:           opts.Config,
		clock:         opts.Clock,
		store:         opts.Store,
		codec:         opts.Codec,
		net:           opts.Network,
		log:           opts.Logger,
		newIdentities: opts.Identities,
		tenants:       map[Tenant]*tenantState{},
		hsmIDs:        map[string]bool{},
		meta:          map[string]string{},
		identities:    make(chan struct{}, 1),
		stop:          make(chan struct{}),
		wake:          make(chan struct{}, 1),
		done:          make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.codec == nil {
		return nil, errors.New("cloudhsm: Options.Codec is required")
	}
	if s.cfg.BackupInterval <= 0 {
		s.cfg.BackupInterval = 24 * time.Hour
	}
	learned, _ := s.net.(*network.Learned)
	// Records are collected first and decoded on every core: decoding is
	// most of a large store's startup.
	var clusterRecs, backupRecs []loadedRecord
	err := s.store.Load(func(kind, key string, value []byte) error {
		switch kind {
		case kindCluster:
			clusterRecs = append(clusterRecs, loadedRecord{key, value})
		case kindBackup:
			backupRecs = append(backupRecs, loadedRecord{key, value})
		case kindMeta:
			s.meta[key] = string(value)
		case kindSubnet:
			t, sn, err := s.codec.DecodeSubnet(value)
			if err != nil {
				return fmt.Errorf("decode subnet %s: %w", key, err)
			}
			if learned != nil {
				learned.Restore(network.Tenant(t), sn)
			}
		default:
			// Skipping it would serve a partial state, and a --seed could
			// then import over it.
			return fmt.Errorf("record %s of unknown kind %q: the data directory was written by a newer cloudhsm-local; use that version, or another directory", key, kind)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	clusters, err := decodeAll(clusterRecs, "cluster", s.codec.DecodeOwnedCluster)
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	backups, err := decodeAll(backupRecs, "backup", s.codec.DecodeOwnedBackup)
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	if v, ok := s.meta["seq"]; ok {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			s.seq = n
		}
	}
	for _, c := range clusters {
		s.loadCluster(c)
	}
	for _, b := range backups {
		s.loadBackup(b)
	}
	// Records load in key order; the listing order is creation order.
	for _, ts := range s.tenants {
		slices.SortFunc(ts.clusterOrder, func(a, b *Cluster) int { return cmpSeq(a.Seq, b.Seq) })
		slices.SortFunc(ts.backupOrder, func(a, b *Backup) int { return cmpSeq(a.Seq, b.Seq) })
		for _, bs := range ts.byCluster {
			slices.SortFunc(bs, func(a, b *Backup) int { return cmpSeq(a.Seq, b.Seq) })
		}
		slices.SortFunc(ts.withPolicy, func(a, b *Backup) int { return cmpSeq(a.Seq, b.Seq) })
	}
	var meta []store.Mutation
	if _, ok := s.meta["token-secret"]; !ok {
		secret := make([]byte, 32)
		_, _ = rand.Read(secret)
		v := fmt.Sprintf("%x", secret)
		meta = append(meta, store.Mutation{Kind: kindMeta, Key: "token-secret", Value: []byte(v)})
		s.meta["token-secret"] = v
	}
	if len(meta) > 0 {
		if err := s.store.Submit(meta)(); err != nil {
			return nil, fmt.Errorf("save simulated roots and token secret: %w", err)
		}
	}
	s.scheduleAll()
	go s.run()
	return s, nil
}

// Close stops the scheduler. It does not close the store.
func (s *Service) Close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.identitiesOnce.Do(func() {})
	if s.identitySource != nil {
		s.identitySource.Close()
	}
}

// Clock returns the service clock.
func (s *Service) Clock() *clock.Clock { return s.clock }
