package pki

import (
	"crypto/rand"
	"crypto/rsa"
)

// generateKey makes an RSA key for an HSM at low CPU priority where the
// system allows it (see lowPriority): a key takes tens of milliseconds of
// one core, and requests that the server is answering meanwhile should not
// wait for it.
func generateKey() (*rsa.PrivateKey, error) {
	type result struct {
		key *rsa.PrivateKey
		err error
	}
	done := make(chan result, 1)
	go func() {
		lowPriority()
		k, err := rsa.GenerateKey(rand.Reader, keyBits)
		done <- result{k, err}
	}()
	r := <-done
	return r.key, r.err
}
