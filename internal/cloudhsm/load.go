package cloudhsm

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
)

type loadedRecord struct {
	key   string
	value []byte
}

// load reads the whole estate from the store into memory: clusters and
// backups, the meta records (the sequence floor, the clock, the values made
// once) and the learned subnets, which go back to the network provider.
func (s *Service) load() error {
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
			s.net.Restore(network.Tenant(t), sn)
		default:
			// Skipping it would serve a partial state, and a --seed could
			// then import over it.
			return fmt.Errorf("record %s of unknown kind %q: the data directory was written by a newer cloudhsm-local, or is not a cloudhsm-local database; use that version, or another directory", key, kind)
		}
		return nil
	})
	if err != nil {
		return err
	}
	clusters, err := decodeAll(clusterRecs, "cluster", s.codec.DecodeOwnedCluster)
	if err != nil {
		return err
	}
	backups, err := decodeAll(backupRecs, "backup", s.codec.DecodeOwnedBackup)
	if err != nil {
		return err
	}
	if err := s.loadMeta(); err != nil {
		return err
	}
	for _, c := range clusters {
		s.loadCluster(c)
	}
	for _, b := range backups {
		s.loadBackup(b)
	}
	// Records load in key order; the listing order is creation order.
	for _, ts := range s.tenants {
		ts.sortBySeq()
	}
	return nil
}

// loadMeta applies the meta records read: the sequence floor and the kept
// clock.
func (s *Service) loadMeta() error {
	if v, ok := s.meta[metaSeq]; ok {
		s.observeSeqFloor(v)
	}
	v, ok := s.meta[metaClock]
	if !ok {
		s.clockKept.Store(s.clock.Generation())
		return nil
	}
	// The kept clock comes back as it was, frozen or running, so that a
	// simulated time never goes back across a restart; a clock started
	// later than it (WithStartTime in a test, say) moves it forward, never
	// back.
	started := s.clock.Now()
	if _, err := s.restoreKeptClock([]byte(v)); err != nil {
		return err
	}
	if kept := s.clock.Now(); kept.Before(started) {
		s.clock.Advance(started.Sub(kept)) // kept at the next commit
	}
	return nil
}

// observeSeqFloor reads the kept sequence floor (see pending.seqFloor).
func (s *Service) observeSeqFloor(v string) {
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		s.seq.observe(n)
	}
}

// restoreKeptClock sets the clock to a kept state, as kept; it reports
// whether the clock was frozen before.
func (s *Service) restoreKeptClock(value []byte) (wasFrozen bool, err error) {
	st, err := s.codec.DecodeClock(value)
	if err != nil {
		return false, fmt.Errorf("decode the estate's kept clock: %w", err)
	}
	wasFrozen = s.clockMode
	s.clock.Restore(st)
	s.clockMode = st.Frozen
	s.clockKept.Store(s.clock.Generation())
	return wasFrozen, nil
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

// loadCluster adds a cluster read from the store; load sorts the order once
// every record is in.
func (s *Service) loadCluster(c *Cluster) {
	c.Subnets = s.internSubnets(c.Subnets)
	ts := s.tenant(c.Tenant)
	ts.clusters[c.ID] = c
	ts.clusterOrder = append(ts.clusterOrder, c)
	c.shown = c.State
	for _, h := range c.Hsms {
		s.ids.holdHsm(h.ID)
		h.shown = h.State
		ts.trackHsm(h, 1)
	}
	s.seq.observe(c.Seq)
	s.versions.observe(c.Version)
}

func (s *Service) loadBackup(b *Backup) {
	ts := s.tenant(b.Tenant)
	ts.backups[b.ID] = b
	ts.backupOrder = append(ts.backupOrder, b)
	ts.byCluster[b.ClusterID] = append(ts.byCluster[b.ClusterID], b)
	b.shown = b.State
	s.indexPolicy(ts, b)
	s.seq.observe(b.Seq)
}

// sortBySeq puts a loaded tenant's lists in creation order.
func (ts *tenantState) sortBySeq() {
	slices.SortFunc(ts.clusterOrder, func(a, b *Cluster) int { return cmpSeq(a.Seq, b.Seq) })
	slices.SortFunc(ts.backupOrder, func(a, b *Backup) int { return cmpSeq(a.Seq, b.Seq) })
	for _, bs := range ts.byCluster {
		slices.SortFunc(bs, func(a, b *Backup) int { return cmpSeq(a.Seq, b.Seq) })
	}
	slices.SortFunc(ts.withPolicy, func(a, b *Backup) int { return cmpSeq(a.Seq, b.Seq) })
}

// loadShared reads the whole estate from a shared store. The estate's kept
// clock comes back as it is: it is every process's.
func (s *Service) loadShared() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*s.storeTimeout())
	defer cancel()
	before := s.localNow()
	view := &cacheView{s: s}
	sy, err := s.shared.Refresh(ctx, 0, view)
	if err != nil {
		return err
	}
	s.observeStoreClock(sy.Now, before)
	s.sh.version = sy.Version
	for _, ts := range s.tenants {
		ts.sortBySeq()
	}
	s.clockKept.Store(s.clock.Generation())
	return nil
}
