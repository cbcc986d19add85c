package pki

import (
	"crypto/rsa"
	"sync"
)

// KeyPool pre-generates RSA 2048 keys in one background goroutine so that
// creating an HSM identity does not wait for key generation. Its Get method
// fits IdentityOptions.KeySource. It is safe for concurrent use.
type KeyPool struct {
	keys chan *rsa.PrivateKey
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// NewKeyPool starts a pool that keeps up to size keys ready (at least 1).
// Call Close to stop its goroutine.
func NewKeyPool(size int) *KeyPool {
	if size < 1 {
		size = 1
	}
	p := &KeyPool{keys: make(chan *rsa.PrivateKey, size), done: make(chan struct{})}
	p.wg.Add(1)
	go p.fill()
	return p
}

func (p *KeyPool) fill() {
	defer p.wg.Done()
	for {
		select {
		case <-p.done:
			return
		default:
		}
		k, err := generateKey()
		if err != nil {
			continue // crypto/rand does not fail in practice; Get generates inline anyway
		}
		select {
		case p.keys <- k:
		case <-p.done:
			return
		}
	}
}

// Get returns a ready key, or generates one at once if none is ready (or
// the pool is closed).
func (p *KeyPool) Get() (*rsa.PrivateKey, error) {
	select {
	case k := <-p.keys:
		return k, nil
	default:
		return generateKey()
	}
}

// Close stops the background goroutine and waits for it to exit. Get keeps
// working afterwards, generating keys inline.
func (p *KeyPool) Close() {
	p.once.Do(func() { close(p.done) })
	p.wg.Wait()
}
