package cloudhsm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
)

// CreateClusterInput is a validated CreateCluster request.
type CreateClusterInput struct {
	HsmType        string
	SubnetIDs      []string
	Mode           string // "" means the default
	NetworkType    string // "" means IPV4
	RetentionDays  int    // 0 means the default (90)
	SourceBackupID string // an id or an ARN
	Tags           []Tag
}

func (s *Service) clone(c *Cluster) *Cluster {
	cp := *c
	cp.Tags = slices.Clone(c.Tags)
	cp.Hsms = make([]*Hsm, len(c.Hsms))
	for i, h := range c.Hsms {
		hc := *h
		cp.Hsms[i] = &hc
	}
	return &cp
}

func checkTags(tags []Tag) error {
	seen := map[string]bool{}
	for _, t := range tags {
		if seen[t.Key] {
			return errf(KindTag, "Duplicate tag key '%s': each tag key can appear only once.", t.Key)
		}
		seen[t.Key] = true
		if strings.HasPrefix(strings.ToLower(t.Key), "aws:") {
			return errf(KindTag, "Tag key '%s' is reserved: keys that begin with 'aws:' are reserved for AWS use.", t.Key)
		}
	}
	return nil
}

func sortTags(tags []Tag) []Tag {
	out := slices.Clone(tags)
	slices.SortFunc(out, func(a, b Tag) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// CreateCluster creates a cluster in CREATE_IN_PROGRESS.
func (s *Service) CreateCluster(ctx context.Context, t Tenant, in CreateClusterInput) (*Cluster, error) {
	if err := checkCreateCluster(&in); err != nil {
		return nil, err
	}
	subnets, err := s.net.Resolve(ctx, network.Tenant(t), in.SubnetIDs)
	if err != nil {
		return nil, networkError(err)
	}
	if in.NetworkType == NetworkDual {
		for _, sn := range subnets {
			if !sn.IPv6CIDR.IsValid() {
				return nil, errf(KindInvalidRequest, "Subnet %s has no IPv6 CIDR block; every subnet of a DUALSTACK cluster needs one.", sn.ID)
			}
		}
	}
	vpc := subnets[0].VpcID
	id := s.reserveID("cluster-")
	defer s.unreserveID(id)
	// Not cancelled with the request: a caller that gives up while EC2
	// makes the group would otherwise leave a group that no cluster records.
	sg, err := s.net.CreateSecurityGroup(context.WithoutCancel(ctx), network.Tenant(t), vpc, id)
	if err != nil {
		return nil, networkError(err)
	}
	var out *Cluster
	err = s.commit("CreateCluster", func(now time.Time, p *pending) error {
		ts := s.tenant(t)
		if q := s.cfg.ClustersPerRegion; q > 0 && s.liveClusters(ts) >= q {
			return errf(KindLimitExceeded, "The quota of %d clusters per Region has been reached in %s for account %s (the cloudhsm-local --quota-clusters setting). Delete a cluster first.", q, t.Region, t.Account)
		}
		c := &Cluster{
			Tenant:        t,
			ID:            id,
			Seq:           s.seq.next(),
			HsmType:       in.HsmType,
			Mode:          in.Mode,
			NetworkType:   in.NetworkType,
			State:         ClusterCreateInProgress,
			Created:       now,
			RetentionDays: in.RetentionDays,
			Subnets:       s.internSubnets(subnets),
			VpcID:         vpc,
			SecurityGroup: sg,
			Tags:          sortTags(in.Tags),
			Due:           now.Add(s.cfg.Delays.ClusterCreate),
			Hsms:          []*Hsm{},
		}
		if in.SourceBackupID != "" {
			if err := s.restoreInto(c, t, in.SourceBackupID); err != nil {
				return err
			}
		}
		if c.Mode == "" {
			c.Mode = ModeFIPS
		}
		s.insertCluster(c)
		s.scheduleCluster(c)
		p.cluster(c)
		out = s.clone(c)
		return nil
	})
	if err != nil {
		// The group must go even if the caller gave up meanwhile: the
		// request's context may be cancelled, and nothing else knows the group.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if derr := s.net.DeleteSecurityGroup(dctx, network.Tenant(t), sg, id); derr != nil {
			s.log.Warn("delete security group of a refused CreateCluster", "cluster", id, "sg", sg, "err", derr)
		}
		cancel()
		return nil, err
	}
	return out, nil
}

// checkCreateCluster applies the rules of CreateCluster's input alone, and
// fills in its defaults.
func checkCreateCluster(in *CreateClusterInput) error {
	switch in.HsmType {
	case HsmTypeHsm1, HsmTypeHsm2m:
	default:
		return errf(KindInvalidRequest, "Provided HsmType is not supported. Supported types are %s and %s.", HsmTypeHsm1, HsmTypeHsm2m)
	}
	if in.NetworkType == "" {
		in.NetworkType = NetworkIPv4
	}
	if in.NetworkType == NetworkDual && in.HsmType != HsmTypeHsm2m {
		return errf(KindInvalidRequest, "NetworkType DUALSTACK is supported only for clusters of HsmType %s.", HsmTypeHsm2m)
	}
	if in.Mode == ModeNonFIPS && in.HsmType != HsmTypeHsm2m {
		return errf(KindInvalidRequest, "Mode NON_FIPS is supported only for clusters of HsmType %s.", HsmTypeHsm2m)
	}
	if in.RetentionDays == 0 {
		in.RetentionDays = DefaultRetentionDays
	}
	if err := CheckRetention(in.RetentionDays); err != nil {
		return err
	}
	return checkTags(in.Tags)
}

// restoreInto makes c a cluster restored from the backup ref names (an id
// of t's or the ARN of one shared with t): its mode, and its certificate.
func (s *Service) restoreInto(c *Cluster, t Tenant, ref string) error {
	b, err := s.findRestorableBackup(t, ref)
	if err != nil {
		return err
	}
	if c.Mode == "" {
		c.Mode = b.Mode
	}
	if c.Mode != b.Mode {
		return errf(KindInvalidRequest, "Backup %s was taken in %s mode and can be restored only into a %s cluster, but the request asks for Mode %s.", b.ID, b.Mode, b.Mode, c.Mode)
	}
	if c.Mode == ModeNonFIPS && c.HsmType != HsmTypeHsm2m {
		return errf(KindInvalidRequest, "Backup %s was taken in NON_FIPS mode; Mode NON_FIPS is supported only for clusters of HsmType %s.", b.ID, HsmTypeHsm2m)
	}
	if b.HsmType == HsmTypeHsm2m && c.HsmType != HsmTypeHsm2m {
		return errf(KindInvalidRequest, "Backup %s was taken on %s HSMs and can be restored only into a %s cluster, but the request asks for HsmType %s.", b.ID, b.HsmType, HsmTypeHsm2m, c.HsmType)
	}
	c.SourceBackupID = ref
	c.ClusterCertificate = b.ClusterCertificate
	return nil
}

func (s *Service) liveClusters(ts *tenantState) int {
	n := 0
	for _, c := range ts.clusters {
		if c.State != ClusterDeleted {
			n++
		}
	}
	return n
}

// CheckRetention refuses a backup retention outside the range AWS accepts.
func CheckRetention(days int) error {
	if days < MinRetentionDays || days > MaxRetentionDays {
		return errf(KindInvalidRequest, "Backup retention must be between %d and %d days, got %d.", MinRetentionDays, MaxRetentionDays, days)
	}
	return nil
}

func networkError(err error) error {
	var ne *network.Error
	if errors.As(err, &ne) && ne.Kind == network.ErrUnavailable && errors.Is(err, errStoreCause) {
		// The placements could not be saved: the store is away, which is
		// the service's failure (500), not a refusal.
		return fmt.Errorf("network: %w", err)
	}
	if errors.As(err, &ne) {
		switch ne.Kind {
		case network.ErrNotFound, network.ErrInvalid:
			return &Error{Kind: KindInvalidRequest, Message: ne.Message}
		case network.ErrUnavailable:
			return &Error{Kind: KindService, Message: ne.Message}
		}
		return &Error{Kind: KindService, Message: ne.Message}
	}
	return fmt.Errorf("network: %w", err)
}

// advanceCluster ends the cluster's current in-progress state.
func (s *Service) advanceCluster(ts *tenantState, c *Cluster, at time.Time, p *pending) {
	// Under DEGRADED the transition belongs to the state under the
	// degradation; the cluster stays DEGRADED in its new state.
	degraded := c.State == ClusterDegraded && c.StateBeforeDegraded != ""
	if degraded {
		c.State = c.StateBeforeDegraded
	}
	if gone := s.stepCluster(c, at, p); gone {
		return
	}
	if degraded && c.State != ClusterDeleted {
		c.StateBeforeDegraded, c.State = c.State, ClusterDegraded
	}
	s.scheduleCluster(c)
	p.cluster(c)
}

// stepCluster makes the transition that ends c's in-progress state, and
// reports whether c is gone (a DELETED cluster past its retention).
func (s *Service) stepCluster(c *Cluster, at time.Time, p *pending) (gone bool) {
	c.Due = time.Time{}
	switch c.State {
	case ClusterCreateInProgress:
		if c.SourceBackupID != "" {
			c.State = ClusterActive
			c.NextBackup = time.Time{}
		} else {
			c.State = ClusterUninitialized
		}
		c.StateMessage = ""
	case ClusterInitializeInProgress:
		c.State = ClusterInitialized
		c.StateMessage = ""
		if !s.cfg.ManualActivation {
			c.Due = at.Add(s.cfg.Delays.ClusterActivate)
		} else {
			c.ManualActivationPending = true
		}
	case ClusterInitialized:
		s.activate(c, at, p)
	case ClusterModifyInProgress, ClusterRollbackInProgress:
		s.finishModify(c, at, p)
	case ClusterDeleteInProgress:
		c.State = ClusterDeleted
		c.StateMessage = ""
		c.Deleted = at
		c.NextBackup = time.Time{}
		c.Due = at.Add(s.cfg.DeletedRetention)
		s.deleteSecurityGroup(c, p)
	case ClusterDeleted:
		s.removeCluster(c)
		p.dropCluster(c)
		return true
	}
	return false
}

// deleteSecurityGroup deletes c's HSMs' network interfaces and then c's
// security group once the lock is released (EC2 may be remote; it refuses
// to delete a group that interfaces still use). It is for a cluster that
// leaves while it still holds the group: reaching DELETED, or removed by
// Reset or Import.
func (s *Service) deleteSecurityGroup(c *Cluster, p *pending) {
	sg, t, id := c.SecurityGroup, c.Tenant, c.ID
	var enis []hsmInterface
	for _, h := range c.Hsms {
		if h.EniID != "" {
			enis = append(enis, interfaceOf(c, h))
		}
	}
	if sg == "" && len(enis) == 0 {
		return
	}
	deleteGroup := func(ok bool) {
		switch {
		case sg == "":
		case !ok:
			s.log.Warn("the server stopped before the cluster's network interfaces were deleted; its security group is left behind too", "cluster", id, "sg", sg)
		default:
			if err := s.net.DeleteSecurityGroup(context.Background(), network.Tenant(t), sg, id); err != nil {
				s.log.Warn("delete cluster security group", "cluster", id, "sg", sg, "err", err)
			}
		}
	}
	p.after = append(p.after, func() { s.deleteInterfaces(enis, true, deleteGroup) })
}

func (s *Service) activate(c *Cluster, at time.Time, p *pending) {
	c.State = ClusterActive
	c.StateMessage = ""
	c.ManualActivationPending = false
	c.Due = time.Time{}
	s.takeBackup(c, at, p)
}

// Activate moves an INITIALIZED cluster to ACTIVE, as the crypto officer's
// `cluster activate` does on a real HSM.
func (s *Service) Activate(t Tenant, clusterID string) (*Cluster, error) {
	var out *Cluster
	err := s.commit(CauseAdmin+"activate", func(now time.Time, p *pending) error {
		c, err := s.getCluster(t, clusterID)
		if err != nil {
			return err
		}
		if c.State != ClusterInitialized {
			return errf(KindInvalidRequest, "Cluster %s is %s; only an INITIALIZED cluster can be activated.", c.ID, c.State)
		}
		s.activate(c, now, p)
		s.scheduleCluster(c)
		p.cluster(c)
		out = s.clone(c)
		return nil
	})
	return out, err
}

func (s *Service) getCluster(t Tenant, id string) (*Cluster, error) {
	ts := s.lookupTenant(t)
	if ts != nil {
		if c := ts.clusters[id]; c != nil && c.State != ClusterDeleted {
			return c, nil
		}
	}
	return nil, errf(KindNotFound, "Cluster %s not found in account %s, region %s.", id, t.Account, t.Region)
}

// ClusterFilter selects clusters in DescribeClusters; nil slices do not filter.
type ClusterFilter struct {
	IDs    []string
	VpcIDs []string
	States []string
}

func (f ClusterFilter) match(c *Cluster) bool {
	return (f.IDs == nil || slices.Contains(f.IDs, c.ID)) &&
		(f.VpcIDs == nil || slices.Contains(f.VpcIDs, c.VpcID)) &&
		(f.States == nil || slices.Contains(f.States, c.State))
}

// VisitClusters calls fn, under the read lock, for up to limit clusters
// with Seq > after in creation order, and returns the Seq to continue after
// (0 when there are no more). fn must not keep c or change it: it is the
// live cluster, which is how the read path avoids copying.
func (s *Service) VisitClusters(t Tenant, f ClusterFilter, after uint64, limit int, fn func(c *Cluster)) (uint64, error) {
	var next uint64
	err := s.read(func(time.Time) error {
		ts := s.lookupTenant(t)
		if ts == nil {
			return nil
		}
		order := ts.clusterOrder
		i := searchSeq(order, after+1, clusterSeq)
		// A clusterIds filter is answered by lookups, not by a scan.
		if f.IDs != nil {
			var picked []*Cluster
			for _, id := range f.IDs {
				if c := ts.clusters[id]; c != nil && c.Seq > after && f.match(c) {
					picked = append(picked, c)
				}
			}
			slices.SortFunc(picked, func(a, b *Cluster) int { return cmpSeq(a.Seq, b.Seq) })
			picked = slices.CompactFunc(picked, func(a, b *Cluster) bool { return a == b })
			order, i = picked, 0
		}
		n := 0
		var last uint64
		for ; i < len(order); i++ {
			c := order[i]
			if !f.match(c) {
				continue
			}
			if n == limit {
				next = last
				return nil
			}
			fn(c)
			n++
			last = c.Seq
		}
		return nil
	})
	return next, err
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ModifyClusterInput is a validated ModifyCluster request.
type ModifyClusterInput struct {
	ClusterID     string
	RetentionDays int    // 0: unchanged
	HsmType       string // "": unchanged
}

// ModifyCluster changes the backup retention or migrates the HSM type.
func (s *Service) ModifyCluster(t Tenant, in ModifyClusterInput) (*Cluster, error) {
	if in.RetentionDays != 0 {
		if err := CheckRetention(in.RetentionDays); err != nil {
			return nil, err
		}
	}
	var out *Cluster
	err := s.commit("ModifyCluster", func(now time.Time, p *pending) error {
		c, err := s.getCluster(t, in.ClusterID)
		if err != nil {
			return err
		}
		if c.State == ClusterDeleteInProgress {
			return errf(KindInvalidRequest, "Cluster %s is being deleted and cannot be modified.", c.ID)
		}
		switch {
		case in.HsmType == "":
		case c.TargetHsmType != "":
			// A migration or rollback is running: asking for its target again
			// changes nothing; anything else is refused, never ignored.
			if in.HsmType != c.TargetHsmType {
				return errf(KindInvalidRequest, "Cluster %s is %s to %s; its HsmType cannot be changed to %s until that completes.", c.ID, c.baseState(), c.TargetHsmType, in.HsmType)
			}
		case in.HsmType != c.HsmType:
			if err := s.startModify(c, in.HsmType, now, p); err != nil {
				return err
			}
		}
		if in.RetentionDays != 0 && in.RetentionDays != c.RetentionDays {
			c.RetentionDays = in.RetentionDays
			s.rescheduleExpiry(c, now, p)
		}
		p.cluster(c)
		out = s.clone(c)
		return nil
	})
	return out, err
}

func (s *Service) startModify(c *Cluster, target string, now time.Time, p *pending) error {
	if c.PreviousHsmType != "" && target == c.PreviousHsmType {
		return s.startRollback(c, now, p)
	}
	if !(c.HsmType == HsmTypeHsm1 && target == HsmTypeHsm2m) {
		return errf(KindInvalidRequest, "Changing HsmType from %s to %s is not supported: the only supported migration is from %s to %s.", c.HsmType, target, HsmTypeHsm1, HsmTypeHsm2m)
	}
	if c.State != ClusterActive {
		return errf(KindInvalidRequest, "Cluster %s is %s; its HsmType can be changed only while it is ACTIVE.", c.ID, c.State)
	}
	for _, h := range c.Hsms {
		if h.State != HsmActive {
			return errf(KindInvalidRequest, "HSM %s is %s; every HSM must be ACTIVE before the HsmType can be changed.", h.ID, h.State)
		}
	}
	s.takeBackup(c, now, p)
	c.State = ClusterModifyInProgress
	c.PreviousHsmType = c.HsmType
	c.TargetHsmType = target
	c.HsmTypeRollbackExpiration = now.Add(24 * time.Hour)
	// One HSM is replaced per delay (see finishModify).
	c.Due = now.Add(s.cfg.Delays.ModifyPerHsm)
	s.scheduleCluster(c)
	return nil
}

// startRollback returns a migrated cluster to its previous HsmType, which
// AWS allows for 24 hours after the migration started.
func (s *Service) startRollback(c *Cluster, now time.Time, p *pending) error {
	if c.State != ClusterActive {
		return errf(KindInvalidRequest, "Cluster %s is %s; a migration can be rolled back only once the cluster is ACTIVE again.", c.ID, c.State)
	}
	if !now.Before(c.HsmTypeRollbackExpiration) {
		return errf(KindInvalidRequest, "The rollback window of cluster %s to %s ended at %s (24 hours after the migration started).", c.ID, c.PreviousHsmType, c.HsmTypeRollbackExpiration.UTC().Format(time.RFC3339))
	}
	s.takeBackup(c, now, p)
	c.State = ClusterRollbackInProgress
	c.TargetHsmType = c.PreviousHsmType
	c.Due = now.Add(s.cfg.Delays.ModifyPerHsm)
	s.scheduleCluster(c)
	return nil
}

// finishModify ends one step of an HsmType migration: AWS replaces the
// HSMs one at a time (each keeps its IP address), with a backup before
// each. When every HSM is migrated the cluster is ACTIVE with the new type.
func (s *Service) finishModify(c *Cluster, at time.Time, p *pending) {
	for i, h := range c.Hsms {
		if h.HsmType == c.TargetHsmType {
			continue
		}
		h.HsmType = c.TargetHsmType
		if slices.ContainsFunc(c.Hsms[i+1:], func(o *Hsm) bool { return o.HsmType != c.TargetHsmType }) {
			s.takeBackup(c, at, p)
			c.Due = at.Add(s.cfg.Delays.ModifyPerHsm)
			return
		}
		break
	}
	if c.State == ClusterRollbackInProgress {
		// Rolled back: there is nothing left to roll back to.
		c.PreviousHsmType = ""
		c.HsmTypeRollbackExpiration = time.Time{}
	}
	c.HsmType = c.TargetHsmType
	c.TargetHsmType = ""
	c.State = ClusterActive
	c.StateMessage = ""
	if c.NextBackup.IsZero() && len(c.Hsms) > 0 {
		// Imported mid-migration without a schedule: daily backups
		// start now that the cluster is ACTIVE.
		c.NextBackup = at.Add(s.cfg.BackupInterval)
	}
}

// DeleteCluster starts deleting a cluster that has no HSMs.
func (s *Service) DeleteCluster(t Tenant, id string) (*Cluster, error) {
	var out *Cluster
	err := s.commit("DeleteCluster", func(now time.Time, p *pending) error {
		c, err := s.getCluster(t, id)
		if err != nil {
			return err
		}
		if len(c.Hsms) > 0 {
			ids := make([]string, len(c.Hsms))
			for i, h := range c.Hsms {
				ids[i] = h.ID
			}
			return errf(KindInvalidRequest, "Cluster %s still contains %d HSM(s) (%s). Delete all HSMs before deleting the cluster.", c.ID, len(c.Hsms), strings.Join(ids, ", "))
		}
		switch c.State {
		case ClusterDeleteInProgress:
			return errf(KindInvalidRequest, "Cluster %s is already being deleted.", c.ID)
		case ClusterCreateInProgress, ClusterInitializeInProgress, ClusterModifyInProgress, ClusterRollbackInProgress, ClusterUpdateInProgress:
			return errf(KindInvalidRequest, "Cluster %s is %s; wait until the operation completes before deleting it.", c.ID, c.State)
		}
		c.State = ClusterDeleteInProgress
		c.StateMessage = msgDeleting
		c.NextBackup = time.Time{}
		c.ManualActivationPending = false
		c.Due = now.Add(s.cfg.Delays.ClusterDelete)
		s.scheduleCluster(c)
		p.cluster(c)
		out = s.clone(c)
		return nil
	})
	return out, err
}

// CertificatesView is which certificates a cluster shows in its
// current state, as AWS does: the CSR and hardware certificates only while
// UNINITIALIZED, the cluster certificate once initialized.
type CertificatesView struct {
	ClusterCsr, HsmCertificate, AwsHardwareCertificate, ManufacturerHardwareCertificate, ClusterCertificate string
}

// Certificates returns what the cluster's Certificates member shows.
func (c *Cluster) Certificates() CertificatesView {
	var v CertificatesView
	if c.baseState() == ClusterUninitialized && c.Csr != "" {
		v.ClusterCsr = c.Csr
		for _, h := range c.Hsms {
			if h.ID == c.CsrHsmID && h.Identity != nil {
				v.HsmCertificate = h.Identity.HsmCertificate
				v.AwsHardwareCertificate = h.Identity.AwsHardwareCertificate
				v.ManufacturerHardwareCertificate = h.Identity.ManufacturerHardwareCertificate
			}
		}
	}
	if c.ClusterCertificate != "" && c.baseState() != ClusterUninitialized {
		v.ClusterCertificate = c.ClusterCertificate
	}
	return v
}

// baseState is the cluster's state under a DEGRADED one (ACTIVE when the
// snapshot or an older store did not say): the state whose rules apply,
// which healing returns to (an HSM's health does not initialize, activate
// or back up a cluster).
func (c *Cluster) baseState() string {
	if c.State == ClusterDegraded {
		return cmp.Or(c.StateBeforeDegraded, ClusterActive)
	}
	return c.State
}

// ShowSecurityGroup reports whether the security group is visible yet (AWS
// omits it from the CreateCluster response).
func (c *Cluster) ShowSecurityGroup() bool { return c.State != ClusterCreateInProgress }
