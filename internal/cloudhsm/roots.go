package cloudhsm

import (
	"fmt"
	"sync"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/pki"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
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
	s.mu.RLock()
	stored, ok := s.meta["authority"]
	s.mu.RUnlock()
	if ok {
		a, err := pki.ParseAuthority([]byte(stored))
		if err != nil {
			return nil, fmt.Errorf("load simulated roots: %w", err)
		}
		s.auth = a
		return a, nil
	}
	roots, err := processAuthority()
	if err != nil {
		return nil, fmt.Errorf("create simulated roots: %w", err)
	}
	s.mu.Lock()
	wait := s.store.Submit([]store.Mutation{{Kind: kindMeta, Key: "authority", Value: roots.encoded}})
	s.meta["authority"] = string(roots.encoded)
	s.mu.Unlock()
	if err := wait(); err != nil {
		return nil, fmt.Errorf("save simulated roots: %w", err)
	}
	s.auth = roots.auth
	return s.auth, nil
}

// TokenSecret returns the persistent secret that pagination tokens are
// signed with.
func (s *Service) TokenSecret() []byte { return []byte(s.meta["token-secret"]) }
