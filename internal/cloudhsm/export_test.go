package cloudhsm

import "time"

// Hooks into the shared mode's internals, for the tests of its
// bookkeeping (what no answer shows, but memory and the store pay for).

// AgendaLen counts the events s has queued.
func AgendaLen(s *Service) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(*s.agenda.(*eventHeap))
}

// CacheStale reports whether s will reload its whole cache next.
func CacheStale(s *Service) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sh.stale
}

// RefreshNow brings s's cache up to date, as a request would, without
// catching up on due work.
func RefreshNow(s *Service) error { return s.refresh() }

// SchedulerSleep is how long s's scheduler would sleep now.
func SchedulerSleep(s *Service) time.Duration { return s.sleep() }
