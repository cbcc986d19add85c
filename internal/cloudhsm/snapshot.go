package cloudhsm

import (
	"slices"
	"time"
)

// Snapshot is the whole state of a server (or the part to import), in the
// format of the admin API's export and import and of --seed files.
type Snapshot struct {
	Version  int        `json:"version"`
	Time     time.Time  `json:"time,omitzero"`
	Clusters []*Cluster `json:"clusters"`
	Backups  []*Backup  `json:"backups"`
}

// SnapshotVersion is the current Snapshot format.
const SnapshotVersion = 1

// Export returns a copy of every cluster and backup.
func (s *Service) Export() (*Snapshot, error) {
	snap := &Snapshot{Version: SnapshotVersion, Clusters: []*Cluster{}, Backups: []*Backup{}}
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
