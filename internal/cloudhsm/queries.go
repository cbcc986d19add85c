package cloudhsm

import (
	"cmp"
	"slices"
	"time"
)

// Views that other parts of the server (the console) need, computed from
// the domain's own state so that each rule stays in one place.

// Tenants returns every account and region that holds or held resources,
// sorted, as of a refresh that started after the call.
func (s *Service) Tenants() ([]Tenant, error) {
	var out []Tenant
	err := s.read(func(time.Time) error {
		for t := range s.tenants {
			out = append(out, t)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b Tenant) int {
		return cmp.Or(cmp.Compare(a.Account, b.Account), cmp.Compare(a.Region, b.Region))
	})
	return out, err
}

// CertificateTime is when certificates are judged (InitializeCluster's
// checks, and what a console shows as valid): the later of the server's
// clock and the real time, so that a clock frozen behind real time does
// not see a certificate issued just now as not yet valid.
func (s *Service) CertificateTime() time.Time {
	return certificateTime(s.clock.Now())
}

func certificateTime(now time.Time) time.Time {
	if wall := time.Now(); wall.After(now) {
		return wall
	}
	return now
}

// SharedAccounts returns the accounts b's resource policy shares it with
// (those its Allow statements name, less those its Deny statements name).
func (b *Backup) SharedAccounts() []string { return slices.Clone(b.sharedAccounts) }

// Initializable reports whether InitializeCluster can be asked for now:
// the cluster is UNINITIALIZED and its CSR is there to sign.
func (c *Cluster) Initializable() bool { return c.State == ClusterUninitialized && c.Csr != "" }

// ClockNow reads the estate's clock, and whether it is frozen, as of a
// refresh that started after the call: with a shared store, a change of
// the clock that any process acknowledged is seen.
func (s *Service) ClockNow() (now time.Time, frozen bool, err error) {
	err = s.read(func(n time.Time) error {
		now, frozen = n, s.clock.Frozen()
		return nil
	})
	return now, frozen, err
}
