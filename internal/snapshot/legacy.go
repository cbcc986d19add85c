package snapshot

import (
	"maps"
	"net/netip"
	"slices"
	"time"
)

// Versions 0 (no version, or 0) and 1 are the domain's structs as
// encoding/json wrote them, Go field names and all, with the document's
// own four fields in lower case. The shapes below are frozen copies of
// every field those structs ever had, so that the domain's types can
// change without breaking files users keep: do not edit them. As then,
// names match case-insensitively. Fields that were the service's own
// bookkeeping (Seq, Version) are read and dropped, and so is Partition,
// which Import derives from the CSR as it does for version 2. A legacy
// document is read into these shapes, then rewritten as version 2 (toV2),
// which converts and checks it as it does a version 2 document.

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

// toV2 rewrites a legacy document as the version 2 document it stands
// for (the table of docs/snapshot-format.md), so that both versions go
// through the one conversion and its checks (Document.toDomain). Times are
// copied as written; null entries were refused before (legacyNulls).
func (doc *legacyDocument) toV2() *Document {
	out := &Document{Version: Version, ExportedAt: doc.Time, Clusters: make([]*Cluster, 0, len(doc.Clusters)), Backups: make([]*Backup, 0, len(doc.Backups))}
	for _, c := range doc.Clusters {
		out.Clusters = append(out.Clusters, c.toV2())
	}
	for _, b := range doc.Backups {
		out.Backups = append(out.Backups, b.toV2())
	}
	return out
}

func (c *legacyCluster) toV2() *Cluster {
	out := &Cluster{
		ClusterID: c.ID, Account: c.Tenant.Account, Region: c.Tenant.Region,
		State: c.State, StateMessage: c.StateMessage, StateBeforeDegraded: c.StateBeforeDegraded,
		HsmType: c.HsmType, Mode: c.Mode, NetworkType: c.NetworkType,
		CreatedAt: c.Created, BackupRetentionDays: c.RetentionDays,
		VpcID: c.VpcID, Subnets: c.subnetsV2(), SecurityGroupID: c.SecurityGroup, SourceBackupID: c.SourceBackupID,
		ClusterCsr: c.Csr, CsrHsmID: c.CsrHsmID, ClusterCertificate: c.ClusterCertificate,
		Tags:            legacyTags(c.Tags),
		TransitionDueAt: c.Due, NextBackupAt: c.NextBackup,
		MigrationTargetHsmType: c.TargetHsmType, PreviousHsmType: c.PreviousHsmType,
		HsmTypeRollbackExpiration: c.HsmTypeRollbackExpiration,
		ManualActivationPending:   c.ManualActivationPending, DeletedAt: c.Deleted,
	}
	for _, h := range c.Hsms {
		out.Hsms = append(out.Hsms, &Hsm{
			HsmID: h.ID, AvailabilityZone: h.AZ, SubnetID: h.SubnetID,
			EniID: h.EniID, EniIP: h.EniIP, EniIPV6: h.EniIPv6,
			HsmType: h.HsmType, State: h.State, StateMessage: h.StateMessage,
			CreatedAt: h.Created, TransitionDueAt: h.Due, Identity: h.Identity.toV2(),
		})
	}
	for _, tr := range c.History {
		out.History = append(out.History, Transition{From: tr.From, To: tr.To, At: tr.At, Cause: tr.Cause})
	}
	return out
}

// subnetsV2 returns the cluster's subnets, their CIDR blocks written as
// version 2 writes them, for its checks to read.
func (c *legacyCluster) subnetsV2() []Subnet {
	var out []Subnet
	for _, sn := range c.Subnets {
		s := Subnet{SubnetID: sn.ID, VpcID: sn.VpcID, AvailabilityZone: sn.AZ}
		if sn.CIDR.IsValid() {
			s.Cidr = sn.CIDR.String()
		}
		if sn.IPv6CIDR.IsValid() {
			s.Ipv6Cidr = sn.IPv6CIDR.String()
		}
		out = append(out, s)
	}
	if len(c.Subnets) == 0 {
		// Files of the first versions may hold only the AZ -> subnet map.
		for _, az := range slices.Sorted(maps.Keys(c.SubnetMapping)) {
			out = append(out, Subnet{SubnetID: c.SubnetMapping[az], VpcID: c.VpcID, AvailabilityZone: az})
		}
	}
	return out
}

func (id *legacyIdentity) toV2() *Identity {
	if id == nil {
		return nil
	}
	return &Identity{
		Serial: id.Serial, HardwarePrivateKey: id.HardwareKeyPEM, PartitionPrivateKey: id.PartitionKeyPEM,
		HsmCertificate: id.HsmCertificate, AwsHardwareCertificate: id.AwsHardwareCertificate,
		ManufacturerHardwareCertificate: id.ManufacturerHardwareCertificate,
	}
}

func legacyTags(tags []legacyTag) []Tag {
	var out []Tag
	for _, t := range tags {
		out = append(out, Tag{Key: t.Key, Value: t.Value})
	}
	return out
}

// toV2 drops IsCopy: as in version 2, a copy is a backup with a source
// backup (which every copy the service made has).
func (b *legacyBackup) toV2() *Backup {
	return &Backup{
		BackupID: b.ID, Account: b.Tenant.Account, Region: b.Tenant.Region, ClusterID: b.ClusterID,
		State: b.State, HsmType: b.HsmType, Mode: b.Mode, ClusterCertificate: b.ClusterCertificate,
		Tags: legacyTags(b.Tags), ResourcePolicy: b.Policy, NeverExpires: b.NeverExpires,
		BackupRetentionDays: b.RetentionDays, CreatedAt: b.Created, ExpiresAt: b.ExpireAt,
		TransitionDueAt: b.Due, DeleteTimestamp: b.DeleteTimestamp, PurgedByService: b.PurgedByService,
		SourceRegion: b.SourceRegion, SourceBackupID: b.SourceBackup, SourceClusterID: b.SourceCluster,
		CopyTimestamp: b.CopyTimestamp,
	}
}
