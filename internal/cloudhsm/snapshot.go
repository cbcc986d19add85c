package cloudhsm

import (
	"slices"
	"time"
)

// Snapshot is the whole state of a service (or the part to import): its
// clusters and backups, and the time it was taken. It is what Export
// returns and Import takes; its file format (export, import, --seed) is
// internal/snapshot's, and none of its fields' names is a format.
type Snapshot struct {
	Time     time.Time
	Clusters []*Cluster
	Backups  []*Backup
}

// Export returns a copy of every cluster and backup.
func (s *Service) Export() (*Snapshot, error) {
	snap := &Snapshot{Clusters: []*Cluster{}, Backups: []*Backup{}}
	err := s.read(func(now time.Time) error {
		snap.Time = now
		for _, ts := range s.tenants {
			for _, c := range ts.clusterOrder {
				snap.Clusters = append(snap.Clusters, s.clone(c))
			}
			for _, b := range ts.backupOrder {
				snap.Backups = append(snap.Backups, s.clonedBackup(b))
			}
		}
		return nil
	})
	slices.SortFunc(snap.Clusters, func(a, b *Cluster) int { return cmpSeq(a.Seq, b.Seq) })
	slices.SortFunc(snap.Backups, func(a, b *Backup) int { return cmpSeq(a.Seq, b.Seq) })
	return snap, err
}
