package cloudhsm

import (
	"container/heap"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
	"github.com/cloudhsm-local/cloudhsm-local/internal/pki"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// Delays is how long each in-progress state lasts.
type Delays struct {
	ClusterCreate     time.Duration
	ClusterInitialize time.Duration
	ClusterActivate   time.Duration
	ClusterDelete     time.Duration
	HsmCreate         time.Duration
	HsmDelete         time.Duration
	BackupCreate      time.Duration
	BackupCopy        time.Duration
	ModifyPerHsm      time.Duration
}

// FastDelays are the default delays: short, but long enough for pollers to
// see every in-progress state.
func FastDelays() Delays {
	return UniformDelays(500 * time.Millisecond)
}

// RealisticDelays approximate AWS's measured durations.
func RealisticDelays() Delays {
	return Delays{
		ClusterCreate:     3 * time.Minute,
		ClusterInitialize: 2 * time.Minute,
		ClusterActivate:   90 * time.Second,
		ClusterDelete:     2 * time.Minute,
		HsmCreate:         5 * time.Minute,
		HsmDelete:         2 * time.Minute,
		BackupCreate:      2 * time.Minute,
		BackupCopy:        5 * time.Minute,
		ModifyPerHsm:      30 * time.Minute,
	}
}

// Config tunes the domain.
type Config struct {
	Delays Delays
	// ManualActivation keeps INITIALIZED clusters there until Activate is called.
	ManualActivation bool
	// DeletedRetention is how long DELETED clusters and backups stay visible.
	DeletedRetention time.Duration
	// ClustersPerRegion and HsmsPerRegion are per-(account, region) quotas; 0 disables.
	ClustersPerRegion int
	HsmsPerRegion     int
	// BackupInterval is the period of scheduled backups (24h on AWS).
	BackupInterval time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Delays: FastDelays(), DeletedRetention: time.Hour, BackupInterval: 24 * time.Hour}
}

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

type tenantState struct {
	clusters     map[string]*Cluster
	clusterOrder []*Cluster // by Seq
	backups      map[string]*Backup
	backupOrder  []*Backup // by Seq
	// byCluster holds each source cluster's backups, by Seq: retention
	// and "is this the latest backup" look at one cluster's backups, and
	// scanning the tenant's for them made each backup's transition cost
	// O(backups in the account).
	byCluster map[string][]*Backup
	// withPolicy holds the backups that have a resource policy, by Seq:
	// listing what other accounts share with a caller visits these, not
	// every backup of the region.
	withPolicy []*Backup
	// addrs counts the addresses of HSM interfaces per subnet id, and hsms
	// the HSMs of the tenant (see trackHsm).
	addrs map[string]map[netip.Addr]int
	hsms  int
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

// Record kinds in the store.
const (
	kindCluster = "cluster"
	kindBackup  = "backup"
	kindMeta    = "meta"
	kindSubnet  = "subnet"
)

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

// processAuthority makes the simulated roots once per process. Generating
// two RSA roots takes a few hundred milliseconds; sharing them (they are
// immutable, and on AWS every customer shares the same roots too) is what
// lets an in-process test server start in well under a millisecond. Each
// data directory stores the roots it was given and keeps them from then on.
//
// The roots are dated from 2020 (valid for twenty years), so that they are
// valid whatever time a test server's clock starts at.
var processAuthority = sync.OnceValues(func() (processRoots, error) {
	a, err := pki.NewAuthority(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		return processRoots{}, err
	}
	b, err := a.MarshalBinary()
	return processRoots{auth: a, encoded: b}, err
})

type processRoots struct {
	auth    *pki.Authority
	encoded []byte
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

// Authority returns the simulated roots.
//
// The roots are made (or parsed from the store) on first use, not at
// startup: two RSA key generations would cost a server start a hundred
// milliseconds or more.
func (s *Service) Authority() (*pki.Authority, error) {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	if s.auth != nil {
		return s.auth, nil
	}
	s.mu.RLock()
	stored, ok := s.meta["authority"]
	s.mu.RUnlock()
	if ok {
		a, err := pki.ParseAuthority([]byte(stored))
		if err != nil {
			return nil, fmt.Errorf("load simulated roots: %w", err)
		}
		s.auth = a
		return a, nil
	}
	roots, err := processAuthority()
	if err != nil {
		return nil, fmt.Errorf("create simulated roots: %w", err)
	}
	s.mu.Lock()
	wait := s.store.Submit([]store.Mutation{{Kind: kindMeta, Key: "authority", Value: roots.encoded}})
	s.meta["authority"] = string(roots.encoded)
	s.mu.Unlock()
	if err := wait(); err != nil {
		return nil, fmt.Errorf("save simulated roots: %w", err)
	}
	s.auth = roots.auth
	return s.auth, nil
}

// TokenSecret returns the persistent secret that pagination tokens are
// signed with.
func (s *Service) TokenSecret() []byte { return []byte(s.meta["token-secret"]) }

// Clock returns the service clock.
func (s *Service) Clock() *clock.Clock { return s.clock }

// Config returns the configuration.
func (s *Service) Config() Config { return s.cfg }

// PersistSubnet is the network.Learned persistence hook: it makes a learned
// subnet durable.
func PersistSubnet(st store.Store, codec Codec) func(network.Tenant, network.Subnet) error {
	return func(t network.Tenant, sn network.Subnet) error {
		b, err := codec.EncodeSubnet(Tenant(t), sn)
		if err != nil {
			return fmt.Errorf("encode subnet: %w", err)
		}
		return st.Submit([]store.Mutation{{Kind: kindSubnet, Key: subnetKey(Tenant(t), sn.ID), Value: b}})()
	}
}

// subnetKey is the store key of a subnet learned for t.
func subnetKey(t Tenant, subnetID string) string { return t.Account + "/" + t.Region + "/" + subnetID }

func (s *Service) tenant(t Tenant) *tenantState {
	ts := s.tenants[t]
	if ts == nil {
		ts = &tenantState{clusters: map[string]*Cluster{}, backups: map[string]*Backup{}, byCluster: map[string][]*Backup{}, addrs: map[string]map[netip.Addr]int{}}
		s.tenants[t] = ts
	}
	return ts
}

func (s *Service) lookupTenant(t Tenant) *tenantState { return s.tenants[t] }

// internSubnets returns the shared copy of a set of subnets (callers hold
// the write lock, or are loading).
func (s *Service) internSubnets(sns []network.Subnet) []network.Subnet {
	if len(sns) == 0 {
		return sns
	}
	// Keyed by the first subnet's id (no allocation); the candidates are
	// compared whole.
	for _, shared := range s.subnetSets[sns[0].ID] {
		if slices.Equal(shared, sns) {
			return shared
		}
	}
	if s.subnetSets == nil {
		s.subnetSets = map[string][][]network.Subnet{}
	}
	s.subnetSets[sns[0].ID] = append(s.subnetSets[sns[0].ID], sns)
	return sns
}

type loadedRecord struct {
	key   string
	value []byte
}

// decodeAll decodes records on every core, keeping their order.
func decodeAll[T any](recs []loadedRecord, what string, decode func([]byte) (T, error)) ([]T, error) {
	out := make([]T, len(recs))
	workers := min(runtime.GOMAXPROCS(0), 1+len(recs)/1000)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(recs); i += workers {
				v, err := decode(recs[i].value)
				if err != nil {
					errs[w] = fmt.Errorf("decode %s %s: %w", what, recs[i].key, err)
					return
				}
				out[i] = v
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// loadCluster adds a cluster read from the store; New sorts the order once
// every record is loaded.
func (s *Service) loadCluster(c *Cluster) {
	c.Subnets = s.internSubnets(c.Subnets)
	ts := s.tenant(c.Tenant)
	ts.clusters[c.ID] = c
	ts.clusterOrder = append(ts.clusterOrder, c)
	for _, h := range c.Hsms {
		s.hsmIDs[h.ID] = true
		ts.trackHsm(h, 1)
	}
	s.seq = max(s.seq, c.Seq)
	s.version = max(s.version, c.Version)
}

func (s *Service) loadBackup(b *Backup) {
	ts := s.tenant(b.Tenant)
	ts.backups[b.ID] = b
	ts.backupOrder = append(ts.backupOrder, b)
	ts.byCluster[b.ClusterID] = append(ts.byCluster[b.ClusterID], b)
	b.sharedAccounts = nil
	if b.Policy != "" {
		b.sharedAccounts = policyAccounts(b)
		ts.withPolicy = append(ts.withPolicy, b)
	}
	s.seq = max(s.seq, b.Seq)
}

func (s *Service) insertCluster(c *Cluster) {
	ts := s.tenant(c.Tenant)
	ts.clusters[c.ID] = c
	// Keep clusterOrder sorted by Seq: loads arrive in key order, not Seq order.
	ts.clusterOrder = insertBySeq(ts.clusterOrder, c, clusterSeq)
	for _, h := range c.Hsms {
		s.hsmIDs[h.ID] = true
		ts.trackHsm(h, 1)
	}
	if c.Seq > s.seq {
		s.seq = c.Seq
	}
}

func (s *Service) insertBackup(b *Backup) {
	ts := s.tenant(b.Tenant)
	ts.backups[b.ID] = b
	ts.backupOrder = insertBySeq(ts.backupOrder, b, backupSeq)
	ts.byCluster[b.ClusterID] = insertBySeq(ts.byCluster[b.ClusterID], b, backupSeq)
	b.sharedAccounts = nil
	if b.Policy != "" {
		b.sharedAccounts = policyAccounts(b)
		ts.withPolicy = insertBySeq(ts.withPolicy, b, backupSeq)
	}
	if b.Seq > s.seq {
		s.seq = b.Seq
	}
}

// insertBySeq inserts x into xs, kept in Seq order (key gives the Seq).
func insertBySeq[T any](xs []T, x T, key func(T) uint64) []T {
	i := len(xs)
	xs = append(xs, x)
	for i > 0 && key(xs[i-1]) > key(x) {
		xs[i] = xs[i-1]
		i--
	}
	xs[i] = x
	return xs
}

func clusterSeq(c *Cluster) uint64 { return c.Seq }
func backupSeq(b *Backup) uint64   { return b.Seq }

func (s *Service) removeCluster(c *Cluster) {
	ts := s.tenant(c.Tenant)
	delete(ts.clusters, c.ID)
	ts.clusterOrder = removeBySeq(ts.clusterOrder, c.Seq, clusterSeq)
	for _, h := range c.Hsms {
		ts.trackHsm(h, -1)
		delete(s.hsmIDs, h.ID)
	}
}

func (s *Service) removeBackup(b *Backup) {
	ts := s.tenant(b.Tenant)
	delete(ts.backups, b.ID)
	ts.backupOrder = removeBySeq(ts.backupOrder, b.Seq, backupSeq)
	if rest := removeBySeq(ts.byCluster[b.ClusterID], b.Seq, backupSeq); len(rest) > 0 {
		ts.byCluster[b.ClusterID] = rest
	} else {
		delete(ts.byCluster, b.ClusterID)
	}
	if b.Policy != "" {
		ts.withPolicy = removeBySeq(ts.withPolicy, b.Seq, backupSeq)
	}
}

func removeBySeq[T any](xs []T, seq uint64, key func(T) uint64) []T {
	i := searchSeq(xs, seq, key)
	if i < len(xs) && key(xs[i]) == seq {
		return slices.Delete(xs, i, i+1) // clears the freed slot: no stale pointer kept
	}
	return xs
}

// searchSeq returns the index of the first element with key >= seq.
func searchSeq[T any](xs []T, seq uint64, key func(T) uint64) int {
	lo, hi := 0, len(xs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if key(xs[m]) < seq {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func (s *Service) nextSeq() uint64 {
	s.seq++
	return s.seq
}

// newID returns prefix + 11 lowercase base32 characters, as AWS's ids are.
func newID(prefix string) string {
	var b [7]byte
	_, _ = rand.Read(b[:])
	return prefix + strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))[:11]
}

// ---- persistence ----

// pending collects the mutations of one operation.
type pending struct {
	codec Codec
	// version is the service's (see Service.version); held under the write lock.
	version *uint64
	// dropped is set when a record was dropped (see seqFloor).
	dropped bool
	muts    []store.Mutation
	// after holds work that must not run under the lock (calls to the
	// network provider, which may be a remote EC2); it runs once the lock
	// is released.
	after []func()
}

// finish runs the work deferred until after the lock.
func (p *pending) finish() {
	for _, f := range p.after {
		f()
	}
}

func (p *pending) cluster(c *Cluster) {
	*p.version++
	c.Version = *p.version
	p.muts = append(p.muts, store.Mutation{Kind: kindCluster, Key: recordKey(c.Tenant, c.Seq), Value: p.codec.EncodeCluster(c)})
}

// subnet records a subnet the learned provider adopted for t.
func (p *pending) subnet(t Tenant, sn network.Subnet) error {
	b, err := p.codec.EncodeSubnet(t, sn)
	if err != nil {
		return fmt.Errorf("encode subnet %s: %w", sn.ID, err)
	}
	p.muts = append(p.muts, store.Mutation{Kind: kindSubnet, Key: subnetKey(t, sn.ID), Value: b})
	return nil
}

func (p *pending) dropCluster(c *Cluster) {
	p.muts = append(p.muts, store.Mutation{Kind: kindCluster, Key: recordKey(c.Tenant, c.Seq)})
	p.seqFloor()
}

// seqFloor asks submit to persist the creation sequence reached, so that a
// restart after records were dropped never hands out a Seq again: a
// NextToken made before would silently skip the new resources. (Once per
// change: a reset drops thousands of records.)
func (p *pending) seqFloor() { p.dropped = true }

func (p *pending) backup(b *Backup) {
	p.muts = append(p.muts, store.Mutation{Kind: kindBackup, Key: recordKey(b.Tenant, b.Seq), Value: p.codec.EncodeBackup(b)})
}

func (p *pending) dropBackup(b *Backup) {
	p.muts = append(p.muts, store.Mutation{Kind: kindBackup, Key: recordKey(b.Tenant, b.Seq)})
	p.seqFloor()
}

// recordKey keys a record by its tenant and creation sequence number, so
// new records append at the end of the store's B+tree instead of landing on
// random pages (random keys cost about three times as much per commit).
func recordKey(t Tenant, seq uint64) string {
	return t.Account + "/" + t.Region + "/" + fmt.Sprintf("%016x", seq)
}

// submit enqueues the collected mutations (under the lock) and returns the
// wait for durability.
func (s *Service) submit(p *pending) func() error {
	if p.dropped {
		p.muts = append(p.muts, store.Mutation{Kind: kindMeta, Key: "seq", Value: []byte(strconv.FormatUint(s.seq, 10))})
	}
	if len(p.muts) == 0 {
		return func() error { return nil }
	}
	return s.store.Submit(p.muts)
}

// newPending starts the writes of one change; s.mu is held for writing.
func (s *Service) newPending() *pending {
	return &pending{codec: s.codec, version: &s.version}
}

// commit runs fn under the write lock after catching up with the clock, then
// waits (outside the lock) until its writes are durable.
func (s *Service) commit(fn func(now time.Time, p *pending) error) error {
	s.mu.Lock()
	now := s.clock.Now()
	p := s.newPending()
	s.catchUpLocked(now, p)
	err := fn(now, p)
	wait := s.submit(p)
	s.mu.Unlock()
	p.finish()
	if werr := wait(); werr != nil {
		return fmt.Errorf("persist: %w", werr)
	}
	return err
}

// read runs fn under the read lock, after catching up with the clock.
func (s *Service) read(fn func(now time.Time) error) error {
	now := s.clock.Now()
	if now.UnixNano() >= s.nextDue.Load() {
		s.mu.Lock()
		p := s.newPending()
		now = s.clock.Now()
		s.catchUpLocked(now, p)
		wait := s.submit(p)
		s.mu.Unlock()
		p.finish()
		if err := wait(); err != nil {
			return fmt.Errorf("persist: %w", err)
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return fn(now)
}

// ---- scheduler ----

type eventKind int

const (
	evCluster       eventKind = iota // cluster state transition
	evClusterBackup                  // scheduled backup
	evHsm                            // HSM state transition
	evBackup                         // backup state transition
	evBackupExpire                   // retention expiry
)

type event struct {
	at     time.Time
	kind   eventKind
	tenant Tenant
	id     string // cluster or backup id
	hsm    string
}

type eventHeap []event

func (h eventHeap) Len() int           { return len(h) }
func (h eventHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h eventHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)        { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	n := len(old)
	x := old[n-1]
	*h = old[:n-1]
	return x
}

// schedule queues an event unless the same one is already queued: marker
// is the resource's record of the time it last queued for this kind of
// event (apply clears it when the event fires).
func (s *Service) schedule(e event, marker *int64) {
	if e.at.IsZero() || *marker == e.at.UnixNano() {
		return
	}
	*marker = e.at.UnixNano()
	if s.loading {
		s.events = append(s.events, e) // scheduleAll heapifies once
		return
	}
	heap.Push(&s.events, e)
	s.updateNextDue()
}

func (s *Service) updateNextDue() {
	if len(s.events) == 0 {
		s.nextDue.Store(1<<63 - 1)
		return
	}
	next := s.events[0].at.UnixNano()
	if s.nextDue.Swap(next) > next {
		// The scheduler may be asleep until a later time (an hour when
		// nothing was due): without a request to catch up on the way, the
		// transition would wait for it.
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// scheduleAll queues the events of every loaded resource, building the heap
// in one pass.
func (s *Service) scheduleAll() {
	s.loading = true
	for _, ts := range s.tenants {
		for _, c := range ts.clusterOrder {
			s.scheduleCluster(c)
		}
		for _, b := range ts.backupOrder {
			s.scheduleBackup(b)
		}
	}
	s.loading = false
	heap.Init(&s.events)
	s.updateNextDue()
}

func (s *Service) scheduleCluster(c *Cluster) {
	s.schedule(event{at: c.Due, kind: evCluster, tenant: c.Tenant, id: c.ID}, &c.queuedDue)
	s.schedule(event{at: c.NextBackup, kind: evClusterBackup, tenant: c.Tenant, id: c.ID}, &c.queuedBackup)
	for _, h := range c.Hsms {
		s.scheduleHsm(c, h)
	}
}

func (s *Service) scheduleHsm(c *Cluster, h *Hsm) {
	s.schedule(event{at: h.Due, kind: evHsm, tenant: c.Tenant, id: c.ID, hsm: h.ID}, &h.queuedDue)
}

func (s *Service) scheduleBackup(b *Backup) {
	s.schedule(event{at: b.Due, kind: evBackup, tenant: b.Tenant, id: b.ID}, &b.queuedDue)
	s.schedule(event{at: b.ExpireAt, kind: evBackupExpire, tenant: b.Tenant, id: b.ID}, &b.queuedExpire)
}

// run wakes at the earliest due event (or when the clock moves) and applies
// every transition that is due.
func (s *Service) run() {
	defer close(s.done)
	moved := s.clock.Subscribe()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := time.Hour
		if !s.clock.Frozen() {
			next := s.nextDue.Load()
			d := time.Duration(next - s.clock.Now().UnixNano())
			if d < wait {
				wait = d
			}
			if wait < time.Millisecond {
				wait = time.Millisecond
			}
		}
		timer.Reset(wait)
		select {
		case <-s.stop:
			return
		case <-moved:
		case <-s.wake:
		case <-timer.C:
		}
		if s.clock.Now().UnixNano() >= s.nextDue.Load() {
			s.mu.Lock()
			p := s.newPending()
			s.catchUpLocked(s.clock.Now(), p)
			w := s.submit(p)
			s.mu.Unlock()
			p.finish()
			if err := w(); err != nil {
				s.log.Error("persist scheduled transitions", "err", err)
			}
		}
	}
}

// CatchUp applies every transition due at the clock's current time and waits
// until the changes are durable. Tests and the admin API call it after
// advancing the clock.
func (s *Service) CatchUp() error {
	return s.commit(func(time.Time, *pending) error { return nil })
}

// catchUpLocked applies due events in time order. Each event is checked
// against the resource's current due time, so stale events are ignored.
func (s *Service) catchUpLocked(now time.Time, p *pending) {
	for len(s.events) > 0 && !s.events[0].at.After(now) {
		e := heap.Pop(&s.events).(event)
		s.apply(e, p)
	}
	s.updateNextDue()
}

func (s *Service) apply(e event, p *pending) {
	ts := s.lookupTenant(e.tenant)
	if ts == nil {
		return
	}
	fired := func(marker *int64) {
		if *marker == e.at.UnixNano() {
			*marker = 0
		}
	}
	switch e.kind {
	case evCluster:
		if c := ts.clusters[e.id]; c != nil {
			fired(&c.queuedDue)
			if c.Due.Equal(e.at) {
				s.advanceCluster(ts, c, e.at, p)
			}
		}
	case evClusterBackup:
		if c := ts.clusters[e.id]; c != nil {
			fired(&c.queuedBackup)
			if c.NextBackup.Equal(e.at) {
				s.scheduledBackup(c, e.at, p)
			}
		}
	case evHsm:
		if c := ts.clusters[e.id]; c != nil {
			for _, h := range c.Hsms {
				if h.ID == e.hsm {
					fired(&h.queuedDue)
					if h.Due.Equal(e.at) {
						s.advanceHsm(c, h, e.at, p)
					}
					break
				}
			}
		}
	case evBackup:
		if b := ts.backups[e.id]; b != nil {
			fired(&b.queuedDue)
			if b.Due.Equal(e.at) {
				s.advanceBackup(ts, b, e.at, p)
			}
		}
	case evBackupExpire:
		if b := ts.backups[e.id]; b != nil {
			fired(&b.queuedExpire)
			if b.ExpireAt.Equal(e.at) {
				s.expireBackup(ts, b, e.at, p)
			}
		}
	}
}

// UniformDelays returns Delays where every in-progress state lasts d.
func UniformDelays(d time.Duration) Delays {
	return Delays{
		ClusterCreate: d, ClusterInitialize: d, ClusterActivate: d, ClusterDelete: d,
		HsmCreate: d, HsmDelete: d, BackupCreate: d, BackupCopy: d, ModifyPerHsm: d,
	}
}
