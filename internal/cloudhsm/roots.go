package cloudhsm

import (
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/pki"
)

// processAuthority makes the simulated roots once per process. Generating
// two RSA roots takes a few hundred milliseconds; sharing them (they are
// immutable, and on AWS every customer shares the same roots too) is what
// lets an in-process test server start in well under a millisecond. Each
// data directory stores the roots it was given and keeps them from then on.
//
// The roots are dated from 2020 (valid for twenty years), so that they are
// valid whatever time a test server's clock starts at.
var processAuthority = sync.OnceValues(func() (processRoots, error) {
	a, err := pki.NewAuthority(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		return processRoots{}, err
	}
	b, err := a.MarshalBinary()
	return processRoots{auth: a, encoded: b}, err
})

type processRoots struct {
	auth    *pki.Authority
	encoded []byte
}

// Authority returns the simulated roots.
//
// The roots are made (or parsed from the store) on first use, not at
// startup: two RSA key generations would cost a server start a hundred
// milliseconds or more.
func (s *Service) Authority() (*pki.Authority, error) {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	if s.auth != nil {
		return s.auth, nil
	}
	encoded, err := s.madeOnce(metaAuthority, func() ([]byte, error) {
		roots, err := processAuthority()
		if err != nil {
			return nil, fmt.Errorf("create simulated roots: %w", err)
		}
		return roots.encoded, nil
	})
	if err != nil {
		return nil, err
	}
	a, err := pki.ParseAuthority(encoded)
	if err != nil {
		return nil, fmt.Errorf("load simulated roots: %w", err)
	}
	s.auth = a
	return a, nil
}

// TokenSecret returns the persistent secret that pagination tokens are
// signed with.
func (s *Service) TokenSecret() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return []byte(s.meta[metaTokenSecret])
}

// newTokenSecret makes a token secret: 32 random bytes, in hex.
func newTokenSecret() ([]byte, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	return fmt.Appendf(nil, "%x", secret), nil
}

// madeOnce returns the value the estate keeps under key, making it with
// make and keeping it when the estate has none. make runs outside the lock
// (making roots takes RSA key generations); the value is kept under the
// write lock only if the estate still has none, so every caller, and every
// process serving the estate, gets the same value.
func (s *Service) madeOnce(key string, make func() ([]byte, error)) ([]byte, error) {
	s.mu.RLock()
	v, ok := s.meta[key]
	s.mu.RUnlock()
	if ok {
		return []byte(v), nil
	}
	made, err := make()
	if err != nil {
		return nil, err
	}
	var out []byte
	err = s.commit(CauseAdmin+"made-once", func(_ time.Time, p *pending) error {
		if v, ok := s.meta[key]; ok {
			out = []byte(v)
			return nil
		}
		p.meta(key, made)
		out = made
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("keep %s: %w", key, err)
	}
	return out, nil
}
