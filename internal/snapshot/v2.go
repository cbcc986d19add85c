// Package snapshot owns the snapshot file format of cloudhsm-local: the
// JSON documents that the admin API's export writes and that its import,
// `cloudhsm-local admin import` and --seed read, which users keep in their
// repositories. Version 2 is the documented format (docs/snapshot-format.md;
// the types of this file). Decode reads every version written so far (0 and
// 1, the domain's structs as they once were, frozen in legacy.go and
// rewritten as version 2 to be converted and checked as it is) and
// refuses what is not the format (syntax, version, unknown fields, null
// entries), naming where; Encode writes version 2. Both convert from and to
// the domain's cloudhsm.Snapshot. What the service can hold is the domain's
// rule (cloudhsm.Service.Import), not the format's.
package snapshot

import "time"

// Version is the version of the format Encode writes.
const Version = 2

// The types below are version 2 of the format, field for field: the JSON
// name of each field is in docs/snapshot-format.md (a test keeps the two
// together). Renaming a JSON name breaks users' files: add a version
// instead. Times are RFC 3339 strings; a field left out takes the default
// the documentation gives.

// Document is a snapshot: every cluster and backup of a server, or the
// part of an estate to import.
type Document struct {
	Version    int        `json:"version"`
	ExportedAt time.Time  `json:"exportedAt,omitzero"`
	Clusters   []*Cluster `json:"clusters"`
	Backups    []*Backup  `json:"backups"`
}

// Cluster is one cluster, with its HSMs.
type Cluster struct {
	ClusterID           string    `json:"clusterId,omitempty"`
	Account             string    `json:"account"`
	Region              string    `json:"region"`
	State               string    `json:"state,omitempty"`
	StateMessage        string    `json:"stateMessage,omitempty"`
	StateBeforeDegraded string    `json:"stateBeforeDegraded,omitempty"`
	HsmType             string    `json:"hsmType,omitempty"`
	Mode                string    `json:"mode,omitempty"`
	NetworkType         string    `json:"networkType,omitempty"`
	CreatedAt           time.Time `json:"createdAt,omitzero"`
	BackupRetentionDays int       `json:"backupRetentionDays,omitempty"`
	VpcID               string    `json:"vpcId,omitempty"`
	Subnets             []Subnet  `json:"subnets,omitempty"`
	SecurityGroupID     string    `json:"securityGroupId,omitempty"`
	SourceBackupID      string    `json:"sourceBackupId,omitempty"`
	ClusterCsr          string    `json:"clusterCsr,omitempty"`
	CsrHsmID            string    `json:"csrHsmId,omitempty"`
	ClusterCertificate  string    `json:"clusterCertificate,omitempty"`
	Tags                []Tag     `json:"tags,omitempty"`
	Hsms                []*Hsm    `json:"hsms,omitempty"`

	// What the service needs to carry on.
	TransitionDueAt           time.Time    `json:"transitionDueAt,omitzero"`
	NextBackupAt              time.Time    `json:"nextBackupAt,omitzero"`
	MigrationTargetHsmType    string       `json:"migrationTargetHsmType,omitempty"`
	PreviousHsmType           string       `json:"previousHsmType,omitempty"`
	HsmTypeRollbackExpiration time.Time    `json:"hsmTypeRollbackExpiration,omitzero"`
	ManualActivationPending   bool         `json:"manualActivationPending,omitempty"`
	DeletedAt                 time.Time    `json:"deletedAt,omitzero"`
	History                   []Transition `json:"history,omitempty"`
}

// Subnet is a subnet a cluster maps an Availability Zone to.
type Subnet struct {
	SubnetID         string `json:"subnetId"`
	VpcID            string `json:"vpcId,omitempty"`
	AvailabilityZone string `json:"availabilityZone"`
	Cidr             string `json:"cidr,omitempty"`
	Ipv6Cidr         string `json:"ipv6Cidr,omitempty"`
}

// Tag is a tag of a cluster or backup.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Transition is one change of a cluster's state.
type Transition struct {
	From  string    `json:"from,omitempty"`
	To    string    `json:"to"`
	At    time.Time `json:"at"`
	Cause string    `json:"cause,omitempty"`
}

// Hsm is one HSM of a cluster.
type Hsm struct {
	HsmID            string    `json:"hsmId,omitempty"`
	AvailabilityZone string    `json:"availabilityZone"`
	SubnetID         string    `json:"subnetId,omitempty"`
	EniID            string    `json:"eniId,omitempty"`
	EniIP            string    `json:"eniIp,omitempty"`
	EniIPV6          string    `json:"eniIpV6,omitempty"`
	HsmType          string    `json:"hsmType,omitempty"`
	State            string    `json:"state,omitempty"`
	StateMessage     string    `json:"stateMessage,omitempty"`
	CreatedAt        time.Time `json:"createdAt,omitzero"`
	TransitionDueAt  time.Time `json:"transitionDueAt,omitzero"`
	Identity         *Identity `json:"identity,omitempty"`
}

// Identity is a simulated HSM's keys and certificates. The private keys
// are in the clear: an export holds them.
type Identity struct {
	Serial                          string `json:"serial,omitempty"`
	HardwarePrivateKey              string `json:"hardwarePrivateKey,omitempty"`
	PartitionPrivateKey             string `json:"partitionPrivateKey,omitempty"`
	HsmCertificate                  string `json:"hsmCertificate,omitempty"`
	AwsHardwareCertificate          string `json:"awsHardwareCertificate,omitempty"`
	ManufacturerHardwareCertificate string `json:"manufacturerHardwareCertificate,omitempty"`
}

// Backup is one backup.
type Backup struct {
	BackupID           string `json:"backupId,omitempty"`
	Account            string `json:"account"`
	Region             string `json:"region"`
	ClusterID          string `json:"clusterId,omitempty"`
	State              string `json:"state,omitempty"`
	HsmType            string `json:"hsmType,omitempty"`
	Mode               string `json:"mode,omitempty"`
	ClusterCertificate string `json:"clusterCertificate,omitempty"`
	Tags               []Tag  `json:"tags,omitempty"`
	ResourcePolicy     string `json:"resourcePolicy,omitempty"`
	NeverExpires       bool   `json:"neverExpires,omitempty"`
	// BackupRetentionDays is the retention of the backup's cluster when it
	// was taken, which applies once the cluster is gone.
	BackupRetentionDays int       `json:"backupRetentionDays,omitempty"`
	CreatedAt           time.Time `json:"createdAt,omitzero"`
	ExpiresAt           time.Time `json:"expiresAt,omitzero"`
	TransitionDueAt     time.Time `json:"transitionDueAt,omitzero"`
	DeleteTimestamp     time.Time `json:"deleteTimestamp,omitzero"`
	PurgedByService     bool      `json:"purgedByService,omitempty"`
	SourceRegion        string    `json:"sourceRegion,omitempty"`
	SourceBackupID      string    `json:"sourceBackupId,omitempty"`
	SourceClusterID     string    `json:"sourceClusterId,omitempty"`
	CopyTimestamp       time.Time `json:"copyTimestamp,omitzero"`
}
