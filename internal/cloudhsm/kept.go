package cloudhsm

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Kept values are what other parts of the server keep with the estate (the
// fault rules), as opaque bytes, so that every process serving a shared
// estate has the same ones and changes them one at a time.

const keptPrefix = "kept:"

// ChangeKept runs fn on the value kept under name (nil when there is none)
// and keeps what it returns, atomically with respect to every process
// serving the estate; it returns the kept value, or fn's error.
func (s *Service) ChangeKept(name string, fn func(old []byte) ([]byte, error)) ([]byte, error) {
	var out []byte
	err := s.commit(CauseAdmin+name, func(_ time.Time, p *pending) error {
		var old []byte
		if v, ok := s.meta[keptPrefix+name]; ok {
			old = []byte(v)
		}
		v, err := fn(old)
		if err != nil {
			return err
		}
		p.meta(keptPrefix+name, v)
		p.changes = append(p.changes, Change{Resource: ResourceKept, ID: name, At: p.at, Cause: p.cause})
		out = v
		return nil
	})
	return out, err
}

// Kept returns the value kept under name (nil when there is none), as of
// the last refresh.
func (s *Service) Kept(name string) []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if v, ok := s.meta[keptPrefix+name]; ok {
		return []byte(v)
	}
	return nil
}

// Shared reports whether the estate is shared with other processes (a
// store.Shared).
func (s *Service) Shared() bool { return s.shared != nil }

// Ready reports whether the service can answer: with a shared store,
// whether the store answers within ctx (and the service's store timeout).
func (s *Service) Ready(ctx context.Context) error {
	if s.shared == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.storeTimeout())
	defer cancel()
	if err := s.shared.Ping(ctx); err != nil {
		return fmt.Errorf("the shared store does not answer: %w", err)
	}
	return nil
}

// Leader reports whether this process holds the lease for timed work of a
// shared estate, and whether the estate is shared at all.
func (s *Service) Leader() (leader, shared bool) {
	if s.shared == nil {
		return false, false
	}
	return s.shared.Leader(), true
}

func keptName(metaKey string) (string, bool) { return strings.CutPrefix(metaKey, keptPrefix) }
