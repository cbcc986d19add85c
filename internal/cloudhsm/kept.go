package cloudhsm

import (
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

func keptName(metaKey string) (string, bool) { return strings.CutPrefix(metaKey, keptPrefix) }
