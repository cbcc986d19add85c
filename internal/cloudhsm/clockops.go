package cloudhsm

import (
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
)

// The clock operations of the admin API: each changes the clock and keeps
// its new state with the estate before it returns, so a simulated time
// never goes back across a restart.

// AdvanceReport is what an advance of the clock did.
type AdvanceReport struct {
	From, To time.Time
	// Transitions counts the changes of state of clusters, HSMs and
	// backups that fell due.
	Transitions int
	// BackupsTaken counts the backups started (daily, on activation, when
	// an HSM was added or removed, before each migration step).
	BackupsTaken int
	// BackupsExpired counts the backups retention sent to PENDING_DELETION.
	BackupsExpired int
	// Removed counts the resources that left: HSMs whose deletion
	// completed, and DELETED clusters and backups whose retention ended.
	Removed int
	// Changes lists the changes, at most MaxReportedChanges of them, in
	// the order they happened.
	Changes []Change
}

// MaxReportedChanges bounds AdvanceReport.Changes.
const MaxReportedChanges = 200

// AdvanceClock moves the clock forward by d, applies everything that falls
// due, and reports what happened.
func (s *Service) AdvanceClock(d time.Duration) (AdvanceReport, error) {
	var r AdvanceReport
	changes, err := s.changeClock(func() {
		r.From = s.clock.Now()
		s.clock.Advance(d)
		r.To = s.clock.Now()
	})
	for _, c := range changes {
		if c.Resource == ResourceClock || !c.Transition() {
			continue
		}
		r.Transitions++
		switch {
		case c.Resource == ResourceBackup && c.From == "" && c.Cause == CauseClock:
			r.BackupsTaken++
		case c.Resource == ResourceBackup && c.To == BackupPendingDeletion && c.Cause == CauseClock:
			r.BackupsExpired++
		case c.To == "" && c.Cause == CauseClock:
			r.Removed++
		}
		if len(r.Changes) < MaxReportedChanges {
			r.Changes = append(r.Changes, c)
		}
	}
	return r, err
}

// FreezeClock stops the clock at its current time.
func (s *Service) FreezeClock() (time.Time, error) {
	var at time.Time
	_, err := s.changeClock(func() { at = s.clock.Freeze() })
	return at, err
}

// ResumeClock lets a frozen clock follow real time again from where it stood.
func (s *Service) ResumeClock() (time.Time, error) {
	var at time.Time
	_, err := s.changeClock(func() { at = s.clock.Resume() })
	return at, err
}

// RealTimeClock returns the clock to real time: no offset, not frozen. It
// is the one way simulated time can go back (resources then may be dated in
// the clock's future).
func (s *Service) RealTimeClock() (time.Time, error) {
	var at time.Time
	_, err := s.changeClock(func() {
		s.clock.Restore(clock.State{})
		at = s.clock.Now()
	})
	return at, err
}

// changeClock makes change to the clock inside a commit, then applies what
// fell due and keeps the clock's new state. Inside the commit, the clock is
// the estate's as every process last kept it (with a shared store, the
// commit first applies what other processes wrote, their clock changes
// among them), so a change made through one process is never undone by
// another's older one.
func (s *Service) changeClock(change func()) ([]Change, error) {
	return s.commitChanges(CauseAdmin+"clock", func(_ time.Time, p *pending) error {
		change()
		s.catchUpLocked(s.clock.Now(), p)
		return nil
	})
}
