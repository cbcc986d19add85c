package cloudhsm

import "time"

// The tenant of callers that name none: DefaultAccount for access keys that
// are not 12-digit account ids, DefaultRegion for unsigned requests. Every
// part of the server takes them from here.
const (
	DefaultAccount = "123456789012"
	DefaultRegion  = "us-east-1"
)

// Backup retention, in days: the range AWS accepts, and its default.
const (
	MinRetentionDays     = 7
	MaxRetentionDays     = 379
	DefaultRetentionDays = 90
)

// Delays is how long each in-progress state lasts.
type Delays struct {
	ClusterCreate     time.Duration
	ClusterInitialize time.Duration
	ClusterActivate   time.Duration
	ClusterDelete     time.Duration
	HsmCreate         time.Duration
	HsmDelete         time.Duration
	BackupCreate      time.Duration
	BackupCopy        time.Duration
	ModifyPerHsm      time.Duration
}

// FastDelays are the default delays: short, but long enough for pollers to
// see every in-progress state.
func FastDelays() Delays {
	return UniformDelays(500 * time.Millisecond)
}

// RealisticDelays approximate AWS's measured durations.
func RealisticDelays() Delays {
	return Delays{
		ClusterCreate:     3 * time.Minute,
		ClusterInitialize: 2 * time.Minute,
		ClusterActivate:   90 * time.Second,
		ClusterDelete:     2 * time.Minute,
		HsmCreate:         5 * time.Minute,
		HsmDelete:         2 * time.Minute,
		BackupCreate:      2 * time.Minute,
		BackupCopy:        5 * time.Minute,
		ModifyPerHsm:      30 * time.Minute,
	}
}

// Config tunes the domain.
type Config struct {
	Delays Delays
	// ManualActivation keeps INITIALIZED clusters there until Activate is called.
	ManualActivation bool
	// DeletedRetention is how long DELETED clusters and backups stay visible.
	DeletedRetention time.Duration
	// ClustersPerRegion and HsmsPerRegion are per-(account, region) quotas; 0 disables.
	ClustersPerRegion int
	HsmsPerRegion     int
	// BackupInterval is the period of scheduled backups (24h on AWS).
	BackupInterval time.Duration
	// StoreTimeout bounds each call to a shared store (default 5s);
	// RefreshInterval is how often a process serving a shared estate
	// looks for changes made elsewhere when nothing asks (default 250ms).
	StoreTimeout, RefreshInterval time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Delays: FastDelays(), DeletedRetention: time.Hour, BackupInterval: 24 * time.Hour}
}

// UniformDelays returns Delays where every in-progress state lasts d.
func UniformDelays(d time.Duration) Delays {
	return Delays{
		ClusterCreate: d, ClusterInitialize: d, ClusterActivate: d, ClusterDelete: d,
		HsmCreate: d, HsmDelete: d, BackupCreate: d, BackupCopy: d, ModifyPerHsm: d,
	}
}
