package cloudhsm

import "time"

// Stats counts resources by type and state, for metrics.
type Stats struct {
	Clusters map[string]int
	Hsms     map[string]int
	Backups  map[string]int
}

// Stats returns resource counts across every tenant.
func (s *Service) Stats() Stats {
	st := Stats{Clusters: map[string]int{}, Hsms: map[string]int{}, Backups: map[string]int{}}
	// Through read, which applies due transitions first, so the counts
	// are the states DescribeClusters/DescribeBackups would show now (the
	// scheduler may be asleep). A persistence failure is reported by the
	// next API call; the counts are still those in memory.
	_ = s.read(func(time.Time) error {
		s.statsLocked(&st)
		return nil
	})
	return st
}

func (s *Service) statsLocked(st *Stats) {
	for _, ts := range s.tenants {
		for _, c := range ts.clusterOrder {
			st.Clusters[c.State]++
			for _, h := range c.Hsms {
				st.Hsms[h.State]++
			}
		}
		for _, b := range ts.backupOrder {
			st.Backups[b.State]++
		}
	}
}
