package cloudhsm

import (
	"context"
	"sync"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
)

// The deletion of HSMs' network interfaces. An HSM's interface is made by
// the network provider before CreateHsm commits (see CreateHsm); it is
// deleted once the lock is released, when DeleteHsm starts deleting the
// HSM (so that it is gone, in the happy case, long before the HSM leaves
// DescribeClusters and a Terraform destroy deletes the subnet), and again,
// if this process does not know it gone, when the HSM leaves (the first
// deletion may have been lost to a restart), when a cluster with HSMs is
// removed (Reset, Import), and when a refused CreateHsm drops the interface
// it made.
//
// A deletion is tried at once, in the goroutine that released the lock;
// while the provider fails (EC2 refuses for a while, or is away), it is
// retried in the background with backoff until it succeeds, each failure
// logged at warn. Retries stop when the service closes: an interface still
// not deleted then is logged as left behind, and nothing retries it after a
// restart unless its HSM is still DELETE_IN_PROGRESS (the HSM's leaving
// deletes it again).

// interfaceRetryFirst and interfaceRetryMax bound the backoff between two
// tries of an interface's deletion (doubling from the first).
const (
	interfaceRetryFirst = 250 * time.Millisecond
	interfaceRetryMax   = 30 * time.Second
)

// interfaceState is what this process knows of an interface's deletion.
type interfaceState int

const (
	ifaceDeleting      interfaceState = iota + 1 // being deleted
	ifaceDeletingFinal                           // being deleted, its HSM gone
	ifaceDeleted                                 // deleted, its HSM not yet gone
)

// interfaces tracks the deletions of HSM interfaces in this process.
type interfaces struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
	state  map[string]interfaceState // by ENI id
}

// hsmInterface names an HSM's interface for its deletion.
type hsmInterface struct {
	t                     Tenant
	eniID, clusterID, hsm string
}

func interfaceOf(c *Cluster, h *Hsm) hsmInterface {
	return hsmInterface{t: c.Tenant, eniID: h.EniID, clusterID: c.ID, hsm: h.ID}
}

// deleteHsmInterface deletes h's interface once the lock is released.
// gone says whether h is leaving its cluster (not only starting to).
func (s *Service) deleteHsmInterface(c *Cluster, h *Hsm, gone bool, p *pending) {
	if h.EniID == "" {
		return
	}
	ifc := interfaceOf(c, h)
	p.after = append(p.after, func() { s.deleteInterfaces([]hsmInterface{ifc}, gone, nil) })
}

// claim marks the interfaces of list that this call must delete, and
// returns them: not those already being deleted, nor (when gone) those
// already deleted, which it forgets.
func (f *interfaces) claim(list []hsmInterface, gone bool) []hsmInterface {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state == nil {
		f.state = map[string]interfaceState{}
	}
	var mine []hsmInterface
	for _, ifc := range list {
		switch f.state[ifc.eniID] {
		case ifaceDeleting, ifaceDeletingFinal:
			if gone {
				f.state[ifc.eniID] = ifaceDeletingFinal
			}
		case ifaceDeleted:
			if gone {
				delete(f.state, ifc.eniID)
			}
		default:
			f.state[ifc.eniID] = ifaceDeleting
			if gone {
				f.state[ifc.eniID] = ifaceDeletingFinal
			}
			mine = append(mine, ifc)
		}
	}
	return mine
}

// done records the end of an interface's deletion (ok: it is deleted).
func (f *interfaces) done(eniID string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ok && f.state[eniID] == ifaceDeleting {
		f.state[eniID] = ifaceDeleted
		return
	}
	delete(f.state, eniID)
}

// deleteInterfaces deletes the interfaces of list (see the comment at the
// top of this file), then calls then (if not nil): with true once all are
// deleted, with false if the service closed first.
func (s *Service) deleteInterfaces(list []hsmInterface, gone bool, then func(ok bool)) {
	mine := s.ifaces.claim(list, gone)
	var failed []hsmInterface
	for _, ifc := range mine {
		if err := s.tryDeleteInterface(context.Background(), ifc, 1); err != nil {
			failed = append(failed, ifc)
			continue
		}
		s.ifaces.done(ifc.eniID, true)
	}
	if len(failed) == 0 {
		if then != nil {
			then(true)
		}
		return
	}
	f := &s.ifaces
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		for _, ifc := range failed {
			s.leftBehind(ifc)
			delete(f.state, ifc.eniID)
		}
		if then != nil {
			then(false)
		}
		return
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		s.retryInterfaces(failed, then)
	}()
}

// tryDeleteInterface makes one try; a failure is logged.
func (s *Service) tryDeleteInterface(ctx context.Context, ifc hsmInterface, try int) error {
	err := s.net.DeleteInterface(ctx, network.Tenant(ifc.t), ifc.eniID, ifc.clusterID, ifc.hsm)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("the HSM's network interface was not deleted; retrying",
			"hsm", ifc.hsm, "cluster", ifc.clusterID, "eni", ifc.eniID, "try", try, "err", err)
	}
	return err
}

// retryInterfaces retries the deletions of list until each succeeds or the
// service closes, then calls then (if not nil) as deleteInterfaces does.
func (s *Service) retryInterfaces(list []hsmInterface, then func(ok bool)) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	wait := interfaceRetryFirst
	for try := 2; len(list) > 0; try++ {
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			for _, ifc := range list {
				s.leftBehind(ifc)
				s.ifaces.done(ifc.eniID, false)
			}
			if then != nil {
				then(false)
			}
			return
		case <-timer.C:
		}
		wait = min(2*wait, interfaceRetryMax)
		var failed []hsmInterface
		for _, ifc := range list {
			if err := s.tryDeleteInterface(ctx, ifc, try); err != nil {
				failed = append(failed, ifc)
				continue
			}
			s.log.Info("the HSM's network interface was deleted", "hsm", ifc.hsm, "cluster", ifc.clusterID, "eni", ifc.eniID, "tries", try)
			s.ifaces.done(ifc.eniID, true)
		}
		list = failed
	}
	if then != nil {
		then(true)
	}
}

func (s *Service) leftBehind(ifc hsmInterface) {
	s.log.Warn("the server stopped before the HSM's network interface was deleted; it is left behind in the network (EC2): delete it there",
		"hsm", ifc.hsm, "cluster", ifc.clusterID, "eni", ifc.eniID)
}

// close stops the retries and waits until they have returned.
func (f *interfaces) close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.wg.Wait()
}
