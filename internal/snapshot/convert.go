package snapshot

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
	"github.com/cloudhsm-local/cloudhsm-local/internal/pki"
)

// ---- version 2 from the domain (Encode) ----

func fromDomain(snap *cloudhsm.Snapshot) *Document {
	doc := &Document{Version: Version, ExportedAt: utc(snap.Time), Clusters: make([]*Cluster, 0, len(snap.Clusters)), Backups: make([]*Backup, 0, len(snap.Backups))}
	for _, c := range snap.Clusters {
		doc.Clusters = append(doc.Clusters, clusterFromDomain(c))
	}
	for _, b := range snap.Backups {
		doc.Backups = append(doc.Backups, backupFromDomain(b))
	}
	return doc
}

// utc writes every time in UTC, so that an export does not depend on the
// server's time zone.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

func clusterFromDomain(c *cloudhsm.Cluster) *Cluster {
	out := &Cluster{
		ClusterID: c.ID, Account: c.Tenant.Account, Region: c.Tenant.Region,
		State: c.State, StateMessage: c.StateMessage, StateBeforeDegraded: c.StateBeforeDegraded,
		HsmType: c.HsmType, Mode: c.Mode, NetworkType: c.NetworkType,
		CreatedAt: utc(c.Created), BackupRetentionDays: c.RetentionDays,
		VpcID: c.VpcID, SecurityGroupID: c.SecurityGroup, SourceBackupID: c.SourceBackupID,
		ClusterCsr: c.Csr, CsrHsmID: c.CsrHsmID, ClusterCertificate: c.ClusterCertificate,
		Tags:            tagsFromDomain(c.Tags),
		TransitionDueAt: utc(c.Due), NextBackupAt: utc(c.NextBackup),
		MigrationTargetHsmType: c.TargetHsmType, PreviousHsmType: c.PreviousHsmType,
		HsmTypeRollbackExpiration: utc(c.HsmTypeRollbackExpiration),
		ManualActivationPending:   c.ManualActivationPending, DeletedAt: utc(c.Deleted),
	}
	for _, sn := range c.Subnets {
		s := Subnet{SubnetID: sn.ID, VpcID: sn.VpcID, AvailabilityZone: sn.AZ}
		if sn.CIDR.IsValid() {
			s.Cidr = sn.CIDR.String()
		}
		if sn.IPv6CIDR.IsValid() {
			s.Ipv6Cidr = sn.IPv6CIDR.String()
		}
		out.Subnets = append(out.Subnets, s)
	}
	for _, h := range c.Hsms {
		out.Hsms = append(out.Hsms, &Hsm{
			HsmID: h.ID, AvailabilityZone: h.AZ, SubnetID: h.SubnetID,
			EniID: h.EniID, EniIP: h.EniIP, EniIPV6: h.EniIPv6,
			HsmType: h.HsmType, State: h.State, StateMessage: h.StateMessage,
			CreatedAt: utc(h.Created), TransitionDueAt: utc(h.Due),
			Identity: identityFromDomain(h.Identity),
		})
	}
	for _, tr := range c.History() {
		out.History = append(out.History, Transition{From: tr.From, To: tr.To, At: utc(tr.At), Cause: tr.Cause})
	}
	return out
}

func identityFromDomain(id *pki.HSMIdentity) *Identity {
	if id == nil {
		return nil
	}
	return &Identity{
		Serial: id.Serial, HardwarePrivateKey: id.HardwareKeyPEM, PartitionPrivateKey: id.PartitionKeyPEM,
		HsmCertificate: id.HsmCertificate, AwsHardwareCertificate: id.AwsHardwareCertificate,
		ManufacturerHardwareCertificate: id.ManufacturerHardwareCertificate,
	}
}

func tagsFromDomain(tags []cloudhsm.Tag) []Tag {
	var out []Tag
	for _, t := range tags {
		out = append(out, Tag{Key: t.Key, Value: t.Value})
	}
	return out
}

func backupFromDomain(b *cloudhsm.Backup) *Backup {
	return &Backup{
		BackupID: b.ID, Account: b.Tenant.Account, Region: b.Tenant.Region, ClusterID: b.ClusterID,
		State: b.State, HsmType: b.HsmType, Mode: b.Mode, ClusterCertificate: b.ClusterCertificate,
		Tags: tagsFromDomain(b.Tags), ResourcePolicy: b.Policy, NeverExpires: b.NeverExpires,
		BackupRetentionDays: b.RetentionDays, CreatedAt: utc(b.Created), ExpiresAt: utc(b.ExpireAt),
		TransitionDueAt: utc(b.Due), DeleteTimestamp: utc(b.DeleteTimestamp), PurgedByService: b.PurgedByService,
		SourceRegion: b.SourceRegion, SourceBackupID: b.SourceBackup, SourceClusterID: b.SourceCluster,
		CopyTimestamp: utc(b.CopyTimestamp),
	}
}

// ---- version 2 to the domain (Decode) ----

func (doc *Document) toDomain() (*cloudhsm.Snapshot, error) {
	snap := &cloudhsm.Snapshot{Time: doc.ExportedAt, Clusters: make([]*cloudhsm.Cluster, 0, len(doc.Clusters)), Backups: make([]*cloudhsm.Backup, 0, len(doc.Backups))}
	for i, c := range doc.Clusters {
		dc, err := c.toDomain(fmt.Sprintf("clusters[%d]", i))
		if err != nil {
			return nil, err
		}
		snap.Clusters = append(snap.Clusters, dc)
	}
	for _, b := range doc.Backups {
		snap.Backups = append(snap.Backups, b.toDomain())
	}
	return snap, nil
}

func (c *Cluster) toDomain(where string) (*cloudhsm.Cluster, error) {
	out := &cloudhsm.Cluster{
		Tenant: cloudhsm.Tenant{Account: c.Account, Region: c.Region}, ID: c.ClusterID,
		State: c.State, StateMessage: c.StateMessage, StateBeforeDegraded: c.StateBeforeDegraded,
		HsmType: c.HsmType, Mode: c.Mode, NetworkType: c.NetworkType,
		Created: c.CreatedAt, RetentionDays: c.BackupRetentionDays,
		VpcID: c.VpcID, SecurityGroup: c.SecurityGroupID, SourceBackupID: c.SourceBackupID,
		Csr: c.ClusterCsr, CsrHsmID: c.CsrHsmID, ClusterCertificate: c.ClusterCertificate,
		Tags: tagsToDomain(c.Tags), Hsms: make([]*cloudhsm.Hsm, 0, len(c.Hsms)),
		Due: c.TransitionDueAt, NextBackup: c.NextBackupAt,
		TargetHsmType: c.MigrationTargetHsmType, PreviousHsmType: c.PreviousHsmType,
		HsmTypeRollbackExpiration: c.HsmTypeRollbackExpiration,
		ManualActivationPending:   c.ManualActivationPending, Deleted: c.DeletedAt,
	}
	for j, sn := range c.Subnets {
		at := fmt.Sprintf("%s.subnets[%d]", where, j)
		cidr, err := parsePrefix(sn.Cidr, at+".cidr", netip.Addr.Is4)
		if err != nil {
			return nil, err
		}
		cidr6, err := parsePrefix(sn.Ipv6Cidr, at+".ipv6Cidr", func(a netip.Addr) bool { return a.Is6() && !a.Is4In6() })
		if err != nil {
			return nil, err
		}
		out.Subnets = append(out.Subnets, network.Subnet{ID: sn.SubnetID, VpcID: sn.VpcID, AZ: sn.AvailabilityZone, CIDR: cidr, IPv6CIDR: cidr6})
	}
	for _, h := range c.Hsms {
		out.Hsms = append(out.Hsms, &cloudhsm.Hsm{
			ID: h.HsmID, AZ: h.AvailabilityZone, SubnetID: h.SubnetID,
			EniID: h.EniID, EniIP: h.EniIP, EniIPv6: h.EniIPV6,
			HsmType: h.HsmType, State: h.State, StateMessage: h.StateMessage,
			Created: h.CreatedAt, Due: h.TransitionDueAt, Identity: h.Identity.toDomain(),
		})
	}
	var h []cloudhsm.Transition
	for _, tr := range c.History {
		h = append(h, cloudhsm.Transition{From: tr.From, To: tr.To, At: tr.At, Cause: tr.Cause})
	}
	if err := out.SetHistory(h); err != nil {
		return nil, fmt.Errorf("%s.%w", where, err)
	}
	return out, nil
}

// parsePrefix reads a CIDR block of the family it accepts ("" is none).
func parsePrefix(s, field string, family func(netip.Addr) bool) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || !family(p.Addr()) {
		return netip.Prefix{}, fmt.Errorf("%s: %q is not a CIDR block of the right family (like 10.0.1.0/24 for cidr, 2600:1f18:aaaa:bb00::/64 for ipv6Cidr)", field, s)
	}
	return p, nil
}

func (id *Identity) toDomain() *pki.HSMIdentity {
	if id == nil {
		return nil
	}
	return &pki.HSMIdentity{
		Serial: id.Serial, HardwareKeyPEM: id.HardwarePrivateKey, PartitionKeyPEM: id.PartitionPrivateKey,
		HsmCertificate: id.HsmCertificate, AwsHardwareCertificate: id.AwsHardwareCertificate,
		ManufacturerHardwareCertificate: id.ManufacturerHardwareCertificate,
	}
}

func tagsToDomain(tags []Tag) []cloudhsm.Tag {
	var out []cloudhsm.Tag
	for _, t := range tags {
		out = append(out, cloudhsm.Tag{Key: t.Key, Value: t.Value})
	}
	return out
}

func (b *Backup) toDomain() *cloudhsm.Backup {
	return &cloudhsm.Backup{
		Tenant: cloudhsm.Tenant{Account: b.Account, Region: b.Region}, ID: b.BackupID, ClusterID: b.ClusterID,
		State: b.State, HsmType: b.HsmType, Mode: b.Mode, ClusterCertificate: b.ClusterCertificate,
		Tags: tagsToDomain(b.Tags), Policy: b.ResourcePolicy, NeverExpires: b.NeverExpires,
		RetentionDays: b.BackupRetentionDays, Created: b.CreatedAt, ExpireAt: b.ExpiresAt,
		Due: b.TransitionDueAt, DeleteTimestamp: b.DeleteTimestamp, PurgedByService: b.PurgedByService,
		SourceRegion: b.SourceRegion, SourceBackup: b.SourceBackupID, SourceCluster: b.SourceClusterID,
		CopyTimestamp: b.CopyTimestamp,
		// A copy is a backup copied from another: one with a source backup.
		IsCopy: b.SourceBackupID != "",
	}
}
