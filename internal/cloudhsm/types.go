// Package cloudhsm is the domain of cloudhsm-local: clusters, HSMs and
// backups, their state machines, the rules AWS CloudHSM applies to them, and
// the timed transitions that a clock drives. It knows nothing of HTTP or of
// storage formats beyond handing opaque records to a store.Store.
package cloudhsm

import (
	"fmt"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
	"github.com/cloudhsm-local/cloudhsm-local/internal/pki"
)

// Tenant is one (account, region): the unit of isolation.
type Tenant struct {
	Account string
	Region  string
}

// ClusterStates lists every cluster state.
var ClusterStates = []string{ClusterCreateInProgress, ClusterUninitialized, ClusterInitializeInProgress,
	ClusterInitialized, ClusterActive, ClusterUpdateInProgress, ClusterModifyInProgress,
	ClusterRollbackInProgress, ClusterDeleteInProgress, ClusterDeleted, ClusterDegraded}

// BackupStates lists every backup state.
var BackupStates = []string{BackupCreateInProgress, BackupReady, BackupDeleted, BackupPendingDeletion}

// Cluster states, in the service model's order.
const (
	ClusterCreateInProgress     = "CREATE_IN_PROGRESS"
	ClusterUninitialized        = "UNINITIALIZED"
	ClusterInitializeInProgress = "INITIALIZE_IN_PROGRESS"
	ClusterInitialized          = "INITIALIZED"
	ClusterActive               = "ACTIVE"
	ClusterUpdateInProgress     = "UPDATE_IN_PROGRESS"
	ClusterModifyInProgress     = "MODIFY_IN_PROGRESS"
	ClusterRollbackInProgress   = "ROLLBACK_IN_PROGRESS"
	ClusterDeleteInProgress     = "DELETE_IN_PROGRESS"
	ClusterDeleted              = "DELETED"
	ClusterDegraded             = "DEGRADED"
)

// HSM states.
const (
	HsmCreateInProgress = "CREATE_IN_PROGRESS"
	HsmActive           = "ACTIVE"
	HsmDegraded         = "DEGRADED"
	HsmDeleteInProgress = "DELETE_IN_PROGRESS"
	HsmDeleted          = "DELETED"
)

// Backup states.
const (
	BackupCreateInProgress = "CREATE_IN_PROGRESS"
	BackupReady            = "READY"
	BackupDeleted          = "DELETED"
	BackupPendingDeletion  = "PENDING_DELETION"
)

// HSM types and modes.
const (
	HsmTypeHsm1       = "hsm1.medium"
	HsmTypeHsm2m      = "hsm2m.medium"
	ModeFIPS          = "FIPS"
	ModeNonFIPS       = "NON_FIPS"
	NetworkIPv4       = "IPV4"
	NetworkDual       = "DUALSTACK"
	MaxTags           = 50
	MaxHsmsPerCluster = 28
)

// Messages AWS is known to send.
const (
	msgInitializing = "Cluster is initializing. State will change to INITIALIZED upon completion."
	msgDeleting     = "The cluster is being deleted."
	msgHsmCreated   = "HSM created."
)

// Tag is a key-value pair.
type Tag struct {
	Key   string
	Value string
}

// Cluster is a CloudHSM cluster. Values handed out by Service are copies.
type Cluster struct {
	Tenant Tenant
	ID     string
	Seq    uint64
	// Version changes with every change of the cluster, to a value no other
	// cluster of the service has had (not even one with the same id before
	// an Import or a Reset), so views of a cluster can be cached by id and
	// Version.
	Version        uint64
	HsmType        string
	Mode           string
	NetworkType    string
	State          string
	StateMessage   string
	Created        time.Time
	RetentionDays  int
	Subnets        []network.Subnet // never mutated after creation
	VpcID          string
	SecurityGroup  string
	SourceBackupID string

	Csr                string
	CsrHsmID           string
	ClusterCertificate string

	Tags []Tag // sorted by key
	Hsms []*Hsm

	// Due is when the current in-progress state ends (zero when none).
	Due time.Time
	// NextBackup is when the next scheduled backup is due (zero when none).
	NextBackup time.Time
	// TargetHsmType is the HsmType being migrated to in MODIFY_IN_PROGRESS.
	TargetHsmType             string
	HsmTypeRollbackExpiration time.Time
	// ManualActivationPending is true for an INITIALIZED cluster waiting for the admin API.
	ManualActivationPending bool
	// Deleted is when the cluster reached DELETED.
	Deleted time.Time
	// Partition numbers the partition in CSR subjects.
	Partition int
	// StateBeforeDegraded is the state to return to when healed.
	StateBeforeDegraded string
	// PreviousHsmType is the type before the last migration, which a
	// ModifyCluster can roll back to until HsmTypeRollbackExpiration.
	PreviousHsmType string
	// history is the cluster's latest state transitions, oldest first, at
	// most MaxHistory of them, packed (see history.go): 100,000 clusters
	// hold a few each, and a cluster read from a record keeps the record's
	// bytes rather than a copy.
	history string

	// The times (Unix nanoseconds) for which events are queued (see
	// Service.schedule); int64 rather than time.Time keeps a Cluster in a
	// smaller allocation class, which 100,000 clusters notice.
	queuedDue, queuedBackup int64
	// shown is the state last announced on the feed (see pending.cluster).
	shown string
}

// SubnetMapping returns the cluster's map from Availability Zone to subnet.
func (c *Cluster) SubnetMapping() map[string]string {
	m := make(map[string]string, len(c.Subnets))
	for _, sn := range c.Subnets {
		m[sn.AZ] = sn.ID
	}
	return m
}

// Transition is one change of a cluster's state, kept in its History.
type Transition struct {
	From, To string    // states; From is "" for the cluster's creation
	At       time.Time // simulated time
	Cause    string    // what made it: an operation, "clock", "admin", "import"
}

// MaxHistory is how many transitions a cluster's History keeps.
const MaxHistory = 32

// Hsm is one HSM of a cluster.
type Hsm struct {
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
	Identity     *pki.HSMIdentity

	queuedDue int64
	shown     string // the state last announced on the feed
	// csr is the cluster CSR this HSM's key signed when it was created, kept
	// (in memory only) for when it becomes ACTIVE.
	csr string
}

// Backup is a CloudHSM backup.
type Backup struct {
	Tenant          Tenant
	ID              string
	Seq             uint64
	ClusterID       string
	State           string
	Created         time.Time
	NeverExpires    bool
	DeleteTimestamp time.Time
	CopyTimestamp   time.Time
	SourceRegion    string
	SourceBackup    string
	SourceCluster   string
	Tags            []Tag
	HsmType         string
	Mode            string
	// ClusterCertificate travels with the backup so a restored cluster has it.
	ClusterCertificate string
	// Policy is the resource policy (see PutResourcePolicy); the service
	// changes it only through setPolicy, which keeps sharedAccounts and the
	// tenant's index of shared backups in step.
	Policy string
	// sharedAccounts are the accounts Policy allows, parsed once.
	sharedAccounts []string
	// IsCopy marks a backup made by CopyBackupToRegion: no retention applies.
	IsCopy bool
	// Due is when the current state ends: READY after CREATE_IN_PROGRESS,
	// DELETED at DeleteTimestamp, gone after DELETED.
	Due time.Time
	// PurgedByService marks a PENDING_DELETION caused by retention.
	PurgedByService bool
	// RetentionDays is the source cluster's retention when the backup was
	// taken, used once that cluster is gone.
	RetentionDays int
	// ExpireAt is when retention next considers this backup (zero: never).
	ExpireAt time.Time

	queuedDue, queuedExpire int64
	shown                   string // the state last announced on the feed
}

// ARN returns the backup's ARN.
func (b *Backup) ARN() string {
	return fmt.Sprintf("arn:%s:cloudhsm:%s:%s:backup/%s", Partition(b.Tenant.Region), b.Tenant.Region, b.Tenant.Account, b.ID)
}
