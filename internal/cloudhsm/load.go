package cloudhsm

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
)

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
