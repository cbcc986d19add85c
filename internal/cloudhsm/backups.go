package cloudhsm

import (
	"encoding/json"
	"fmt"
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
		ID:                 s.newBackupID(),
		Seq:                s.nextSeq(),
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

func (s *Service) newBackupID() string {
	for {
		id := newID("backup-")
		clash := false
		for _, ts := range s.tenants {
			if ts.backups[id] != nil {
				clash = true
				break
			}
		}
		if !clash {
			return id
		}
	}
}

// scheduledBackup is the every-24-hours backup of an ACTIVE cluster with HSMs.
func (s *Service) scheduledBackup(c *Cluster, at time.Time, p *pending) {
	if c.baseState() == ClusterActive && len(c.Hsms) > 0 {
		s.takeBackup(c, at, p)
	} else {
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
	return s.mutateBackup(t, id, func(now time.Time, b *Backup, p *pending) error {
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
	return s.mutateBackup(t, id, func(now time.Time, b *Backup, p *pending) error {
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
	return s.mutateBackup(t, id, func(now time.Time, b *Backup, p *pending) error {
		if b.State == BackupDeleted {
			return errf(KindInvalidRequest, "Backup %s is DELETED and cannot be modified.", b.ID)
		}
		b.NeverExpires = neverExpires
		b.ExpireAt = s.computeExpiry(b, now)
		return nil
	})
}

func (s *Service) mutateBackup(t Tenant, id string, fn func(now time.Time, b *Backup, p *pending) error) (*Backup, error) {
	var out *Backup
	err := s.commit(func(now time.Time, p *pending) error {
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
	err := s.commit(func(now time.Time, p *pending) error {
		src, err := s.getBackup(t, id)
		if err != nil {
			return err
		}
		if src.State != BackupReady {
			return errf(KindInvalidRequest, "Backup %s is %s; only a READY backup can be copied.", src.ID, src.State)
		}
		cp := &Backup{
			Tenant:             Tenant{Account: t.Account, Region: dest},
			ID:                 s.newBackupID(),
			Seq:                s.nextSeq(),
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

func isGov(region string) bool { return strings.HasPrefix(region, "us-gov-") }

var knownRegions = map[string]bool{}

func init() {
	for _, r := range strings.Fields(`us-east-1 us-east-2 us-west-1 us-west-2 af-south-1 ap-east-1 ap-east-2
		ap-south-1 ap-south-2 ap-southeast-1 ap-southeast-2 ap-southeast-3 ap-southeast-4 ap-southeast-5 ap-southeast-6 ap-southeast-7
		ap-northeast-1 ap-northeast-2 ap-northeast-3 ca-central-1 ca-west-1 eu-central-1 eu-central-2 eu-west-1
		eu-west-2 eu-west-3 eu-south-1 eu-south-2 eu-north-1 il-central-1 me-south-1 me-central-1 mx-central-1
		sa-east-1 us-gov-east-1 us-gov-west-1`) {
		knownRegions[r] = true
	}
}

// KnownRegion reports whether region is an AWS region in the aws and
// aws-us-gov partitions.
func KnownRegion(region string) bool { return knownRegions[region] }

// ---- resource policies ----

// parseBackupARN resolves a resource ARN for the policy operations.
func (s *Service) policyBackup(t Tenant, arn string) (*Backup, error) {
	if arn == "" {
		return nil, errf(KindInvalidRequest, "ResourceArn is required: give the ARN of a backup, arn:aws:cloudhsm:<region>:<account>:backup/<backup-id>.")
	}
	owner, id, ok := parseBackupARN(arn)
	if !ok {
		return nil, errf(KindInvalidRequest, "Resource policies are supported only for backups; %s is not a backup ARN.", arn)
	}
	if owner != t {
		return nil, errf(KindAccessDenied, "Backup %s belongs to account %s in %s; resource policies can be read or changed only by the backup's owner in its own region.", id, owner.Account, owner.Region)
	}
	return s.getBackup(t, id)
}

// GetResourcePolicy returns a backup's policy ("" when none).
func (s *Service) GetResourcePolicy(t Tenant, arn string) (string, error) {
	var policy string
	err := s.read(func(time.Time) error {
		b, err := s.policyBackup(t, arn)
		if err != nil {
			return err
		}
		policy = b.Policy
		return nil
	})
	return policy, err
}

// PutResourcePolicy sets a backup's policy and returns the stored policy.
func (s *Service) PutResourcePolicy(t Tenant, arn, policy string) (string, error) {
	var out string
	err := s.commit(func(now time.Time, p *pending) error {
		b, err := s.policyBackup(t, arn)
		if err != nil {
			return err
		}
		if b.State != BackupReady {
			return errf(KindInvalidRequest, "Backup %s is %s; only a READY backup can be shared.", b.ID, b.State)
		}
		if _, err := parsePolicy(policy, b.ARN()); err != nil {
			return err
		}
		s.setPolicy(b, policy)
		p.backup(b)
		out = policy
		return nil
	})
	return out, err
}

// DeleteResourcePolicy removes a backup's policy and returns it.
func (s *Service) DeleteResourcePolicy(t Tenant, arn string) (string, error) {
	var out string
	err := s.commit(func(now time.Time, p *pending) error {
		b, err := s.policyBackup(t, arn)
		if err != nil {
			return err
		}
		out = b.Policy
		s.setPolicy(b, "")
		p.backup(b)
		return nil
	})
	return out, err
}

// setPolicy sets b's policy (a valid one, or "" for none) and keeps its
// parsed accounts and its tenant's index of backups with a policy in step;
// the write lock is held.
func (s *Service) setPolicy(b *Backup, policy string) {
	ts := s.tenant(b.Tenant)
	if b.Policy != "" {
		ts.withPolicy = removeBySeq(ts.withPolicy, b.Seq, backupSeq)
	}
	b.Policy, b.sharedAccounts = policy, nil
	if policy != "" {
		b.sharedAccounts = policyAccounts(b)
		ts.withPolicy = insertBySeq(ts.withPolicy, b, backupSeq)
	}
}

// policyAccounts returns the accounts b's policy allows (none if the
// stored policy does not parse).
func policyAccounts(b *Backup) []string {
	accts, err := parsePolicy(b.Policy, b.ARN())
	if err != nil {
		return nil
	}
	return accts
}

// sharedWith reports whether b's policy shares it with account.
func (s *Service) sharedWith(b *Backup, account string) bool {
	return b.Policy != "" && b.State == BackupReady && slices.Contains(b.sharedAccounts, account)
}

// sharedBackups lists, in Seq order, the backups of other accounts in t's
// region that are shared with t.
func (s *Service) sharedBackups(t Tenant) []*Backup {
	var out []*Backup
	for ot, ts := range s.tenants {
		if ot.Region != t.Region || ot.Account == t.Account {
			continue
		}
		for _, b := range ts.withPolicy {
			if s.sharedWith(b, t.Account) {
				out = append(out, b)
			}
		}
	}
	slices.SortFunc(out, func(a, b *Backup) int { return cmpSeq(a.Seq, b.Seq) })
	return out
}

var accountRe = regexp.MustCompile(`^[0-9]{12}$`)
var rootARNRe = regexp.MustCompile(`^arn:aws(?:-us-gov)?:iam::([0-9]{12}):root$`)

// parsePolicy validates an IAM-style resource policy for backupARN and
// returns the accounts it allows.
func parsePolicy(doc, backupARN string) ([]string, error) {
	bad := func(format string, args ...any) error {
		return errf(KindInvalidRequest, "Invalid resource policy: "+format, args...)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(doc), &raw); err != nil {
		return nil, bad("the policy is not a JSON object (%v).", err)
	}
	var version string
	if v, ok := raw["Version"]; ok {
		if err := json.Unmarshal(v, &version); err != nil || (version != "2012-10-17" && version != "2008-10-17") {
			return nil, bad("Version must be \"2012-10-17\".")
		}
	} else {
		return nil, bad("the Version element is missing; use \"Version\": \"2012-10-17\".")
	}
	st, ok := raw["Statement"]
	if !ok {
		return nil, bad("the Statement element is missing.")
	}
	var stmts []map[string]json.RawMessage
	if err := json.Unmarshal(st, &stmts); err != nil {
		var one map[string]json.RawMessage
		if err2 := json.Unmarshal(st, &one); err2 != nil {
			return nil, bad("Statement must be an object or a list of objects.")
		}
		stmts = []map[string]json.RawMessage{one}
	}
	if len(stmts) == 0 {
		return nil, bad("Statement is empty.")
	}
	var allow, deny []string
	for i, stmt := range stmts {
		n := i + 1
		var effect string
		if err := json.Unmarshal(stmt["Effect"], &effect); err != nil || (effect != "Allow" && effect != "Deny") {
			return nil, bad("statement %d: Effect must be \"Allow\" or \"Deny\".", n)
		}
		accts, err := policyPrincipals(stmt["Principal"])
		if err != nil {
			return nil, bad("statement %d: %s", n, err.Error())
		}
		actions, err := stringOrList(stmt["Action"])
		if err != nil || len(actions) == 0 {
			return nil, bad("statement %d: Action must be a string or a list of strings such as \"cloudhsm:DescribeBackups\".", n)
		}
		for _, a := range actions {
			if !strings.HasPrefix(a, "cloudhsm:") {
				return nil, bad("statement %d: action %q is not a CloudHSM action (cloudhsm:...).", n, a)
			}
		}
		resources, err := stringOrList(stmt["Resource"])
		if err != nil || len(resources) == 0 {
			return nil, bad("statement %d: Resource must name this backup, %s.", n, backupARN)
		}
		for _, r := range resources {
			if r != backupARN {
				return nil, bad("statement %d: resource %q is not this backup; a backup's policy can name only %s.", n, r, backupARN)
			}
		}
		if effect == "Allow" {
			allow = append(allow, accts...)
		} else {
			deny = append(deny, accts...)
		}
	}
	out := slices.DeleteFunc(slices.Clone(allow), func(a string) bool { return slices.Contains(deny, a) })
	slices.Sort(out)
	return slices.Compact(out), nil
}

// policyProblem is a sentence telling the user what is wrong with a
// policy's Principal; it becomes part of the refusal's message.
type policyProblem string

func (p policyProblem) Error() string { return string(p) }

func policyPrincipals(raw json.RawMessage) ([]string, error) {
	if raw == nil {
		return nil, policyProblem(`Principal is missing; name the AWS accounts to share with, e.g. {"AWS": "111122223333"}.`)
	}
	var p map[string]json.RawMessage
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, policyProblem(`Principal must be an object such as {"AWS": ["111122223333"]}; "*" is not allowed.`)
	}
	vals, err := stringOrList(p["AWS"])
	if err != nil || len(vals) == 0 {
		return nil, policyProblem(`Principal must have an "AWS" element listing account ids or root ARNs.`)
	}
	var out []string
	for _, v := range vals {
		switch {
		case accountRe.MatchString(v):
			out = append(out, v)
		case rootARNRe.MatchString(v):
			out = append(out, rootARNRe.FindStringSubmatch(v)[1])
		default:
			return nil, policyProblem(fmt.Sprintf("principal %q is not a 12-digit account id or an arn:aws:iam::<account>:root ARN.", v))
		}
	}
	return out, nil
}

func stringOrList(raw json.RawMessage) ([]string, error) {
	if raw == nil {
		return nil, fmt.Errorf("missing")
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, err
	}
	return many, nil
}
