package cloudhsm

import (
	"regexp"
	"slices"
	"strings"
	"time"
)

// PendingDeletionWindow is how long a deleted backup can be restored.
const PendingDeletionWindow = 7 * 24 * time.Hour

// takeBackup starts a backup of cluster c at time at.
func (s *Service) takeBackup(c *Cluster, at time.Time, p *pending) *Backup {
	b := &Backup{
		Tenant:             c.Tenant,
		ID:                 s.freshID("backup-"),
		Seq:                s.seq.next(),
		ClusterID:          c.ID,
		State:              BackupCreateInProgress,
		Created:            at,
		Tags:               slices.Clone(c.Tags),
		HsmType:            c.HsmType,
		Mode:               c.Mode,
		ClusterCertificate: c.ClusterCertificate,
		RetentionDays:      c.RetentionDays,
		Due:                at.Add(s.cfg.Delays.BackupCreate),
	}
	s.insertBackup(b)
	s.scheduleBackup(b)
	p.backup(b)
	c.NextBackup = at.Add(s.cfg.BackupInterval)
	s.schedule(event{at: c.NextBackup, kind: evClusterBackup, tenant: c.Tenant, id: c.ID}, &c.queuedBackup)
	return b
}

// scheduledBackup is the every-24-hours backup of an ACTIVE cluster with HSMs.
// A cluster being migrated (or rolled back) skips it and keeps its
// schedule: it is ACTIVE again once the migration ends.
func (s *Service) scheduledBackup(c *Cluster, at time.Time, p *pending) {
	switch st := c.baseState(); {
	case len(c.Hsms) == 0:
		c.NextBackup = time.Time{}
	case st == ClusterActive:
		s.takeBackup(c, at, p)
	case st == ClusterModifyInProgress || st == ClusterRollbackInProgress:
		c.NextBackup = at.Add(s.cfg.BackupInterval)
		s.scheduleCluster(c)
	default:
		c.NextBackup = time.Time{}
	}
	p.cluster(c)
}

func (s *Service) retentionOf(b *Backup) int {
	if ts := s.lookupTenant(b.Tenant); ts != nil {
		if c := ts.clusters[b.ClusterID]; c != nil {
			return c.RetentionDays
		}
	}
	if b.RetentionDays > 0 {
		return b.RetentionDays
	}
	return DefaultRetentionDays
}

func (s *Service) computeExpiry(b *Backup, now time.Time) time.Time {
	if b.IsCopy || b.NeverExpires || b.State != BackupReady {
		return time.Time{}
	}
	at := b.Created.Add(time.Duration(s.retentionOf(b)) * 24 * time.Hour)
	if at.Before(now) {
		at = now
	}
	return at
}

func (s *Service) advanceBackup(ts *tenantState, b *Backup, at time.Time, p *pending) {
	b.Due = time.Time{}
	switch b.State {
	case BackupCreateInProgress:
		b.State = BackupReady
		b.ExpireAt = s.computeExpiry(b, at)
		s.expireSpared(ts, b, at, p)
	case BackupPendingDeletion:
		b.State = BackupDeleted
		b.Due = at.Add(s.cfg.DeletedRetention)
	case BackupDeleted:
		s.removeBackup(b)
		p.dropBackup(b)
		return
	}
	s.scheduleBackup(b)
	p.backup(b)
}

// expireSpared expires the older backups of b's cluster that retention
// spared because they were the latest, now that b is READY (new, or
// restored from PENDING_DELETION).
func (s *Service) expireSpared(ts *tenantState, b *Backup, at time.Time, p *pending) {
	if b.IsCopy {
		return
	}
	for _, o := range ts.byCluster[b.ClusterID] {
		if o != b && !o.IsCopy && o.State == BackupReady && !o.NeverExpires && o.ExpireAt.IsZero() &&
			o.Created.Before(b.Created) && !o.Created.Add(time.Duration(s.retentionOf(o))*24*time.Hour).After(at) {
			s.expireBackup(ts, o, at, p)
		}
	}
}

// isLatest reports whether b is the most recent usable backup of its
// cluster: no newer one is READY or being made. A newer one in
// PENDING_DELETION does not count: it may never come back, and AWS never
// deletes a cluster's last backup.
func (s *Service) isLatest(ts *tenantState, b *Backup) bool {
	for _, o := range ts.byCluster[b.ClusterID] {
		if o != b && !o.IsCopy && (o.State == BackupReady || o.State == BackupCreateInProgress) && o.Created.After(b.Created) {
			return false
		}
	}
	return true
}

func (s *Service) expireBackup(ts *tenantState, b *Backup, at time.Time, p *pending) {
	b.ExpireAt = time.Time{}
	if b.State != BackupReady || b.NeverExpires || b.IsCopy {
		p.backup(b)
		return
	}
	if s.isLatest(ts, b) {
		// AWS never deletes a cluster's last backup; reconsidered when a newer one is READY.
		p.backup(b)
		return
	}
	b.State = BackupPendingDeletion
	b.PurgedByService = true
	b.DeleteTimestamp = at.Add(PendingDeletionWindow)
	b.Due = b.DeleteTimestamp
	s.scheduleBackup(b)
	p.backup(b)
}

// rescheduleExpiry recomputes expiry of a cluster's backups after a
// retention change.
func (s *Service) rescheduleExpiry(c *Cluster, now time.Time, p *pending) {
	ts := s.lookupTenant(c.Tenant)
	for _, b := range ts.byCluster[c.ID] {
		if b.IsCopy {
			continue
		}
		b.RetentionDays = c.RetentionDays
		if b.State == BackupReady {
			b.ExpireAt = s.computeExpiry(b, now)
			s.scheduleBackup(b)
		}
		p.backup(b)
	}
}

func (s *Service) clonedBackup(b *Backup) *Backup {
	cp := *b
	cp.Tags = slices.Clone(b.Tags)
	return &cp
}

func (s *Service) getBackup(t Tenant, id string) (*Backup, error) {
	if ts := s.lookupTenant(t); ts != nil {
		if b := ts.backups[id]; b != nil {
			return b, nil
		}
	}
	return nil, errf(KindNotFound, "Backup %s not found in account %s, region %s.", id, t.Account, t.Region)
}

var backupARNRe = regexp.MustCompile(`^arn:(aws(?:-us-gov)?):cloudhsm:([a-z0-9-]+):([0-9]{12}):backup/(backup-[2-7a-zA-Z]{11,16})$`)

// parseBackupARN returns the owner and id of the backup an ARN names, and
// false unless it is a backup ARN whose partition is its region's.
func parseBackupARN(arn string) (owner Tenant, id string, ok bool) {
	m := backupARNRe.FindStringSubmatch(arn)
	if m == nil || m[1] != Partition(m[2]) {
		return Tenant{}, "", false
	}
	return Tenant{Account: m[3], Region: m[2]}, m[4], true
}

// findRestorableBackup resolves CreateCluster's SourceBackupId: an id of the
// caller's own backup, or the ARN of one in the same region, possibly in
// another account that shares it with the caller.
func (s *Service) findRestorableBackup(t Tenant, ref string) (*Backup, error) {
	owner, id := t, ref
	if strings.HasPrefix(ref, "arn:") {
		var ok bool
		if owner, id, ok = parseBackupARN(ref); !ok {
			return nil, errf(KindInvalidRequest, "SourceBackupId %s is not a valid backup ARN.", ref)
		}
		if owner.Region != t.Region {
			return nil, errf(KindInvalidRequest, "Backup %s is in region %s; a cluster can be created only from a backup in its own region (%s). Copy the backup with CopyBackupToRegion first.", id, owner.Region, t.Region)
		}
	}
	b, err := s.getBackup(owner, id)
	if err != nil {
		return nil, err
	}
	if owner.Account != t.Account && !s.sharedWith(b, t.Account) {
		return nil, errf(KindNotFound, "Backup %s not found in account %s, region %s.", id, t.Account, t.Region)
	}
	if b.State != BackupReady {
		return nil, errf(KindInvalidRequest, "Backup %s is %s; a cluster can be created only from a READY backup.", b.ID, b.State)
	}
	return b, nil
}

// BackupFilter selects backups in DescribeBackups; nil slices do not filter.
type BackupFilter struct {
	IDs, SourceIDs, ClusterIDs, States []string
	NeverExpires                       *bool
}

func (f BackupFilter) match(b *Backup) bool {
	return (f.IDs == nil || slices.Contains(f.IDs, b.ID)) &&
		(f.SourceIDs == nil || slices.Contains(f.SourceIDs, b.SourceBackup)) &&
		(f.ClusterIDs == nil || slices.Contains(f.ClusterIDs, b.ClusterID)) &&
		(f.States == nil || slices.Contains(f.States, b.State)) &&
		(f.NeverExpires == nil || *f.NeverExpires == b.NeverExpires)
}

// DescribeBackupsInput is a DescribeBackups query.
type DescribeBackupsInput struct {
	Filter    BackupFilter
	Ascending bool
	Shared    bool
	After     uint64 // continue after this Seq (0: from the start)
	Limit     int
}

// DescribeBackups lists the caller's backups (or those shared with it),
// newest first unless Ascending, and returns the Seq to continue after.
func (s *Service) DescribeBackups(t Tenant, in DescribeBackupsInput) ([]*Backup, uint64, error) {
	var out []*Backup
	var next uint64
	err := s.read(func(time.Time) error {
		var order []*Backup
		if in.Shared {
			order = s.sharedBackups(t)
		} else if ts := s.lookupTenant(t); ts != nil {
			order = ts.backupOrder
			// backupIds and clusterIds filters are answered by lookups,
			// not by a scan of the account's backups.
			switch {
			case in.Filter.IDs != nil:
				order = nil
				for _, id := range in.Filter.IDs {
					if b := ts.backups[id]; b != nil {
						order = append(order, b)
					}
				}
			case in.Filter.ClusterIDs != nil:
				order = nil
				for _, id := range in.Filter.ClusterIDs {
					order = append(order, ts.byCluster[id]...)
				}
			}
			if in.Filter.IDs != nil || in.Filter.ClusterIDs != nil {
				slices.SortFunc(order, func(a, b *Backup) int { return cmpSeq(a.Seq, b.Seq) })
				order = slices.CompactFunc(order, func(a, b *Backup) bool { return a == b })
			}
		}
		if in.Ascending {
			i := searchSeq(order, in.After+1, backupSeq)
			for ; i < len(order); i++ {
				if b := order[i]; in.Filter.match(b) {
					if len(out) == in.Limit {
						next = out[len(out)-1].Seq
						return nil
					}
					out = append(out, s.clonedBackup(b))
				}
			}
			return nil
		}
		i := len(order) - 1
		if in.After != 0 {
			i = searchSeq(order, in.After, backupSeq) - 1
		}
		for ; i >= 0; i-- {
			if b := order[i]; in.Filter.match(b) {
				if len(out) == in.Limit {
					next = out[len(out)-1].Seq
					return nil
				}
				out = append(out, s.clonedBackup(b))
			}
		}
		return nil
	})
	return out, next, err
}

// DeleteBackup marks a backup PENDING_DELETION for 7 days.
func (s *Service) DeleteBackup(t Tenant, id string) (*Backup, error) {
	return s.mutateBackup("DeleteBackup", t, id, func(now time.Time, b *Backup, p *pending) error {
		if b.State != BackupReady {
			return errf(KindInvalidRequest, "Backup %s is %s; only a READY backup can be deleted.", b.ID, b.State)
		}
		b.State = BackupPendingDeletion
		b.DeleteTimestamp = now.Add(PendingDeletionWindow)
		b.Due = b.DeleteTimestamp
		b.ExpireAt = time.Time{}
		return nil
	})
}

// RestoreBackup returns a PENDING_DELETION backup to READY.
func (s *Service) RestoreBackup(t Tenant, id string) (*Backup, error) {
	return s.mutateBackup("RestoreBackup", t, id, func(now time.Time, b *Backup, p *pending) error {
		if b.State != BackupPendingDeletion {
			return errf(KindInvalidRequest, "Backup %s is %s; only a backup in PENDING_DELETION can be restored.", b.ID, b.State)
		}
		b.State = BackupReady
		b.DeleteTimestamp = time.Time{}
		b.Due = time.Time{}
		b.PurgedByService = false
		b.ExpireAt = s.computeExpiry(b, now)
		if min := now.Add(s.cfg.BackupInterval); !b.ExpireAt.IsZero() && b.ExpireAt.Before(min) {
			// A restored backup already past retention gets a day's grace.
			b.ExpireAt = min
		}
		s.expireSpared(s.tenant(t), b, now, p)
		return nil
	})
}

// ModifyBackupAttributes sets NeverExpires.
func (s *Service) ModifyBackupAttributes(t Tenant, id string, neverExpires bool) (*Backup, error) {
	return s.mutateBackup("ModifyBackupAttributes", t, id, func(now time.Time, b *Backup, p *pending) error {
		if b.State == BackupDeleted {
			return errf(KindInvalidRequest, "Backup %s is DELETED and cannot be modified.", b.ID)
		}
		b.NeverExpires = neverExpires
		b.ExpireAt = s.computeExpiry(b, now)
		return nil
	})
}

func (s *Service) mutateBackup(op string, t Tenant, id string, fn func(now time.Time, b *Backup, p *pending) error) (*Backup, error) {
	var out *Backup
	err := s.commit(op, func(now time.Time, p *pending) error {
		b, err := s.getBackup(t, id)
		if err != nil {
			return err
		}
		if err := fn(now, b, p); err != nil {
			return err
		}
		s.scheduleBackup(b)
		p.backup(b)
		out = s.clonedBackup(b)
		return nil
	})
	return out, err
}

// CopyResult is CopyBackupToRegion's answer.
type CopyResult struct {
	CreateTimestamp time.Time
	SourceRegion    string
	SourceBackup    string
	SourceCluster   string
}

// CopyBackupToRegion copies a READY backup to another region of the same account.
func (s *Service) CopyBackupToRegion(t Tenant, id, dest string, tags []Tag, tagsGiven bool) (*CopyResult, error) {
	if dest == t.Region {
		return nil, errf(KindInvalidRequest, "DestinationRegion %s is the backup's own region; choose a different region.", dest)
	}
	if !KnownRegion(dest) {
		return nil, errf(KindInvalidRequest, "DestinationRegion %s is not a region that CloudHSM serves.", dest)
	}
	if isGov(dest) != isGov(t.Region) {
		return nil, errf(KindInvalidRequest, "Backups cannot be copied between %s and %s: copies between AWS GovCloud (US) and standard regions are not allowed.", t.Region, dest)
	}
	if tagsGiven {
		if err := checkTags(tags); err != nil {
			return nil, err
		}
	}
	var out *CopyResult
	err := s.commit("CopyBackupToRegion", func(now time.Time, p *pending) error {
		src, err := s.getBackup(t, id)
		if err != nil {
			return err
		}
		if src.State != BackupReady {
			return errf(KindInvalidRequest, "Backup %s is %s; only a READY backup can be copied.", src.ID, src.State)
		}
		cp := &Backup{
			Tenant:             Tenant{Account: t.Account, Region: dest},
			ID:                 s.freshID("backup-"),
			Seq:                s.seq.next(),
			ClusterID:          src.ClusterID,
			State:              BackupCreateInProgress,
			Created:            src.Created,
			CopyTimestamp:      now,
			SourceRegion:       t.Region,
			SourceBackup:       src.ID,
			SourceCluster:      src.ClusterID,
			Tags:               slices.Clone(src.Tags),
			HsmType:            src.HsmType,
			Mode:               src.Mode,
			ClusterCertificate: src.ClusterCertificate,
			IsCopy:             true,
			Due:                now.Add(s.cfg.Delays.BackupCopy),
		}
		if tagsGiven {
			cp.Tags = sortTags(tags)
		}
		s.insertBackup(cp)
		s.scheduleBackup(cp)
		p.backup(cp)
		out = &CopyResult{CreateTimestamp: src.Created, SourceRegion: t.Region, SourceBackup: src.ID, SourceCluster: src.ClusterID}
		return nil
	})
	return out, err
}
