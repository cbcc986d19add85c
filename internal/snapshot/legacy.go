package snapshot

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
	"github.com/cloudhsm-local/cloudhsm-local/internal/pki"
)

// Versions 0 (no version, or 0) and 1 are the domain's structs as
// encoding/json wrote them, Go field names and all, with the document's
// own four fields in lower case. The shapes below are frozen copies of
// every field those structs ever had, so that the domain's types can
// change without breaking files users keep: do not edit them. As then,
// names match case-insensitively. Fields that were the service's own
// bookkeeping (Seq, Version) are read and dropped, and so is Partition,
// which Import derives from the CSR as it does for version 2.

type legacyDocument struct {
	Version  int              `json:"version"`
	Time     time.Time        `json:"time"`
	Clusters []*legacyCluster `json:"clusters"`
	Backups  []*legacyBackup  `json:"backups"`
}

type legacyTenant struct {
	Account string
	Region  string
}

type legacyTag struct {
	Key   string
	Value string
}

type legacySubnet struct {
	ID, VpcID, AZ string
	CIDR          netip.Prefix
	IPv6CIDR      netip.Prefix
}

type legacyCluster struct {
	Tenant         legacyTenant
	ID             string
	Seq            uint64
	Version        uint64
	HsmType        string
	Mode           string
	NetworkType    string
	State          string
	StateMessage   string
	Created        time.Time
	RetentionDays  int
	SubnetMapping  map[string]string // until the Subnets alone were kept
	Subnets        []legacySubnet
	VpcID          string
	SecurityGroup  string
	SourceBackupID string

	Csr                string
	CsrHsmID           string
	ClusterCertificate string

	Tags []legacyTag
	Hsms []*legacyHsm

	Due                       time.Time
	NextBackup                time.Time
	TargetHsmType             string
	HsmTypeRollbackExpiration time.Time
	ManualActivationPending   bool
	Deleted                   time.Time
	Partition                 int
	StateBeforeDegraded       string
	PreviousHsmType           string
	History                   []legacyTransition
}

type legacyTransition struct {
	From, To string
	At       time.Time
	Cause    string
}

type legacyHsm struct {
	ID           string
	AZ           string
	SubnetID     string
	EniID        string
	EniIP        string
	EniIPv6      string
	HsmType      string
	State        string
	StateMessage string
	Created      time.Time
	Due          time.Time
	Identity     *legacyIdentity
}

type legacyIdentity struct {
	HardwareKeyPEM                  string
	PartitionKeyPEM                 string
	HsmCertificate                  string
	AwsHardwareCertificate          string
	ManufacturerHardwareCertificate string
	Serial                          string
}

type legacyBackup struct {
	Tenant             legacyTenant
	ID                 string
	Seq                uint64
	ClusterID          string
	State              string
	Created            time.Time
	NeverExpires       bool
	DeleteTimestamp    time.Time
	CopyTimestamp      time.Time
	SourceRegion       string
	SourceBackup       string
	SourceCluster      string
	Tags               []legacyTag
	HsmType            string
	Mode               string
	ClusterCertificate string
	Policy             string
	IsCopy             bool
	Due                time.Time
	PurgedByService    bool
	RetentionDays      int
	ExpireAt           time.Time
}

func (doc *legacyDocument) toDomain() (*cloudhsm.Snapshot, error) {
	snap := &cloudhsm.Snapshot{Time: doc.Time, Clusters: make([]*cloudhsm.Cluster, 0, len(doc.Clusters)), Backups: make([]*cloudhsm.Backup, 0, len(doc.Backups))}
	for i, c := range doc.Clusters {
		dc, err := c.toDomain()
		if err != nil {
			return nil, fmt.Errorf("clusters[%d]: %w", i, err)
		}
		snap.Clusters = append(snap.Clusters, dc)
	}
	for _, b := range doc.Backups {
		snap.Backups = append(snap.Backups, b.toDomain())
	}
	return snap, nil
}

func (c *legacyCluster) toDomain() (*cloudhsm.Cluster, error) {
	out := &cloudhsm.Cluster{
		Tenant: cloudhsm.Tenant{Account: c.Tenant.Account, Region: c.Tenant.Region}, ID: c.ID,
		HsmType: c.HsmType, Mode: c.Mode, NetworkType: c.NetworkType,
		State: c.State, StateMessage: c.StateMessage, StateBeforeDegraded: c.StateBeforeDegraded,
		Created: c.Created, RetentionDays: c.RetentionDays,
		VpcID: c.VpcID, SecurityGroup: c.SecurityGroup, SourceBackupID: c.SourceBackupID,
		Csr: c.Csr, CsrHsmID: c.CsrHsmID, ClusterCertificate: c.ClusterCertificate,
		Tags: legacyTags(c.Tags), Hsms: make([]*cloudhsm.Hsm, 0, len(c.Hsms)),
		Due: c.Due, NextBackup: c.NextBackup,
		TargetHsmType: c.TargetHsmType, PreviousHsmType: c.PreviousHsmType,
		HsmTypeRollbackExpiration: c.HsmTypeRollbackExpiration,
		ManualActivationPending:   c.ManualActivationPending, Deleted: c.Deleted,
	}
	for _, sn := range c.Subnets {
		out.Subnets = append(out.Subnets, network.Subnet{ID: sn.ID, VpcID: sn.VpcID, AZ: sn.AZ, CIDR: sn.CIDR, IPv6CIDR: sn.IPv6CIDR})
	}
	if len(c.Subnets) == 0 {
		// Files of the first versions may hold only the AZ -> subnet map.
		for _, az := range slices.Sorted(maps.Keys(c.SubnetMapping)) {
			out.Subnets = append(out.Subnets, network.Subnet{ID: c.SubnetMapping[az], VpcID: c.VpcID, AZ: az})
		}
	}
	for _, h := range c.Hsms {
		out.Hsms = append(out.Hsms, &cloudhsm.Hsm{
			ID: h.ID, AZ: h.AZ, SubnetID: h.SubnetID, EniID: h.EniID, EniIP: h.EniIP, EniIPv6: h.EniIPv6,
			HsmType: h.HsmType, State: h.State, StateMessage: h.StateMessage,
			Created: h.Created, Due: h.Due, Identity: h.Identity.toDomain(),
		})
	}
	var h []cloudhsm.Transition
	for _, tr := range c.History {
		h = append(h, cloudhsm.Transition{From: tr.From, To: tr.To, At: tr.At, Cause: tr.Cause})
	}
	if err := out.SetHistory(h); err != nil {
		return nil, fmt.Errorf("History: %w", err)
	}
	return out, nil
}

func (id *legacyIdentity) toDomain() *pki.HSMIdentity {
	if id == nil {
		return nil
	}
	return &pki.HSMIdentity{
		HardwareKeyPEM: id.HardwareKeyPEM, PartitionKeyPEM: id.PartitionKeyPEM,
		HsmCertificate: id.HsmCertificate, AwsHardwareCertificate: id.AwsHardwareCertificate,
		ManufacturerHardwareCertificate: id.ManufacturerHardwareCertificate, Serial: id.Serial,
	}
}

func legacyTags(tags []legacyTag) []cloudhsm.Tag {
	var out []cloudhsm.Tag
	for _, t := range tags {
		out = append(out, cloudhsm.Tag{Key: t.Key, Value: t.Value})
	}
	return out
}

func (b *legacyBackup) toDomain() *cloudhsm.Backup {
	return &cloudhsm.Backup{
		Tenant: cloudhsm.Tenant{Account: b.Tenant.Account, Region: b.Tenant.Region}, ID: b.ID, ClusterID: b.ClusterID, State: b.State,
		Created: b.Created, NeverExpires: b.NeverExpires, DeleteTimestamp: b.DeleteTimestamp,
		CopyTimestamp: b.CopyTimestamp, SourceRegion: b.SourceRegion, SourceBackup: b.SourceBackup,
		SourceCluster: b.SourceCluster, Tags: legacyTags(b.Tags), HsmType: b.HsmType, Mode: b.Mode,
		ClusterCertificate: b.ClusterCertificate, Policy: b.Policy, IsCopy: b.IsCopy, Due: b.Due,
		PurgedByService: b.PurgedByService, RetentionDays: b.RetentionDays, ExpireAt: b.ExpireAt,
	}
}
