package cloudhsm

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

func (s *Service) nextSeq() uint64 {
	s.seq++
	return s.seq
}

// newID returns prefix + 11 lowercase base32 characters, as AWS's ids are.
func newID(prefix string) string {
	var b [7]byte
	_, _ = rand.Read(b[:])
	return prefix + strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))[:11]
}
