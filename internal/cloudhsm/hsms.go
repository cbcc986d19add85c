package cloudhsm

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
	"github.com/cloudhsm-local/cloudhsm-local/internal/pki"
)

// CreateHsmInput is a validated CreateHsm request.
type CreateHsmInput struct {
	ClusterID string
	AZ        string
	IPAddress string
}

func (s *Service) checkCanAddHsm(t Tenant, in CreateHsmInput) (*Cluster, error) {
	c, err := s.getCluster(t, in.ClusterID)
	if err != nil {
		return nil, err
	}
	if sn := c.subnet(in.AZ); sn.ID == "" {
		azs := make([]string, 0, len(c.Subnets))
		for _, sn := range c.Subnets {
			azs = append(azs, sn.AZ)
		}
		slices.Sort(azs)
		return nil, errf(KindInvalidRequest, "Availability Zone %s is not mapped to a subnet of cluster %s; use one of: %v.", in.AZ, c.ID, azs)
	}
	switch st := c.baseState(); st {
	case ClusterUninitialized, ClusterInitializeInProgress, ClusterInitialized:
		if len(c.Hsms) > 0 {
			return nil, errf(KindInvalidRequest, "Cluster '%s' already contains an HSM but has not yet been fully activated", c.ID)
		}
		if st != ClusterUninitialized {
			return nil, errf(KindInvalidRequest, "Cluster %s is %s; HSMs can be added once it is ACTIVE.", c.ID, c.State)
		}
	case ClusterActive: // also under DEGRADED (baseState)
	default:
		return nil, errf(KindInvalidRequest, "Cluster %s is %s; HSMs can be created only in an UNINITIALIZED (first HSM) or ACTIVE cluster.", c.ID, c.State)
	}
	if len(c.Hsms) >= MaxHsmsPerCluster {
		return nil, errf(KindInvalidRequest, "Cluster %s already has %d HSMs, the maximum number of HSMs per cluster.", c.ID, MaxHsmsPerCluster)
	}
	// The requested address is checked here too, so that a refused request
	// costs no key generation.
	if in.IPAddress != "" {
		sn := c.subnet(in.AZ)
		if _, err := network.AllocateIPv4(sn, s.addrInUse(t, sn.ID), in.IPAddress); err != nil {
			return nil, networkError(err)
		}
	}
	if q := s.cfg.HsmsPerRegion; q > 0 {
		if s.lookupTenant(t).hsms >= q {
			return nil, errf(KindInvalidRequest, "The quota of %d HSMs per Region has been reached in %s for account %s (the cloudhsm-local --quota-hsms setting). Delete an HSM first.", q, t.Region, t.Account)
		}
	}
	return c, nil
}

// CreateHsm adds an HSM to a cluster. Its network interface is made by the
// network provider (a real ENI in EC2 with --ec2-endpoint) after the checks
// and before the commit, outside the lock; a refused commit deletes it.
func (s *Service) CreateHsm(ctx context.Context, t Tenant, in CreateHsmInput) (*Hsm, error) {
	// Check first, so that a refused request costs no key generation and
	// no interface.
	var c Cluster
	var req network.InterfaceRequest
	if err := s.read(func(time.Time) error {
		live, err := s.checkCanAddHsm(t, in)
		if err != nil {
			return err
		}
		c = Cluster{Mode: live.Mode, HsmType: live.HsmType, State: live.State, NetworkType: live.NetworkType}
		req = s.interfaceRequest(t, live, in)
		return nil
	}); err != nil {
		return nil, err
	}
	id := s.reserveID("hsm-")
	defer s.unreserveID(id)
	// The first HSM's key signs the cluster CSR when it becomes ACTIVE; the
	// signature is made now, outside the lock, for that moment.
	identity, csr, err := s.newIdentity(id, c.Mode, c.HsmType, c.State == ClusterUninitialized)
	if err != nil {
		return nil, err
	}
	req.HsmID = id
	// Not cancelled with the request: a caller that gives up while EC2
	// makes the interface would otherwise leave one that no HSM records.
	iface, err := s.net.CreateInterface(context.WithoutCancel(ctx), network.Tenant(t), req)
	if err != nil {
		return nil, networkError(err)
	}
	var out *Hsm
	err = s.commit("CreateHsm", func(now time.Time, p *pending) error {
		c, err := s.checkCanAddHsm(t, in)
		if err != nil {
			return err
		}
		h := &Hsm{
			ID:       id,
			AZ:       in.AZ,
			SubnetID: c.subnet(in.AZ).ID,
			EniID:    iface.ID,
			HsmType:  c.HsmType,
			State:    HsmCreateInProgress,
			Created:  now,
			Due:      now.Add(s.cfg.Delays.HsmCreate),
			Identity: identity,
			csr:      csr,
		}
		if err := s.hsmAddresses(t, c, h, in.IPAddress, iface); err != nil {
			return err
		}
		s.addHsm(c, h)
		s.scheduleHsm(c, h)
		p.cluster(c)
		hc := *h
		out = &hc
		return nil
	})
	if err != nil {
		if iface.ID != "" {
			s.deleteInterfaces([]hsmInterface{{t: t, eniID: iface.ID, clusterID: in.ClusterID, hsm: id}}, true, nil)
		}
		return nil, err
	}
	return out, nil
}

// interfaceRequest describes the interface of a new HSM of c; the lock is
// held (for reading).
func (s *Service) interfaceRequest(t Tenant, c *Cluster, in CreateHsmInput) network.InterfaceRequest {
	sn := c.subnet(in.AZ)
	req := network.InterfaceRequest{
		Subnet:        sn,
		ClusterID:     c.ID,
		SecurityGroup: c.SecurityGroup,
		IPv6:          c.NetworkType == NetworkDual,
	}
	if in.IPAddress != "" {
		req.IP, _ = netip.ParseAddr(in.IPAddress) // checked by checkCanAddHsm
	}
	// The provider asks after the lock is released (and only if it
	// chooses addresses): each question takes the lock again.
	req.InUse = func(a netip.Addr) bool {
		s.mu.RLock()
		defer s.mu.RUnlock()
		return s.addrInUse(t, sn.ID)(a)
	}
	return req
}

// hsmAddresses gives h its addresses in the subnet of its AZ: the
// interface's where the provider made a real one (checked again against
// the tenant's index, which may have changed since), else allocated from
// the index as requested. The lock is held.
func (s *Service) hsmAddresses(t Tenant, c *Cluster, h *Hsm, requested string, iface network.Interface) error {
	sn := c.subnet(h.AZ)
	inUse := s.addrInUse(t, sn.ID)
	if iface.IP.IsValid() {
		requested = iface.IP.String()
	}
	ip, err := network.AllocateIPv4(sn, inUse, requested)
	if err != nil {
		return networkError(err)
	}
	h.EniIP = ip.String()
	if c.NetworkType != NetworkDual {
		return nil
	}
	ip6 := iface.IPv6
	switch {
	case !ip6.IsValid():
		if ip6, err = network.AllocateIPv6(sn, inUse); err != nil {
			return networkError(err)
		}
	case inUse(ip6):
		return errf(KindInvalidRequest, "IPv6 address %s is already in use in subnet %s.", ip6, sn.ID)
	}
	h.EniIPv6 = ip6.String()
	return nil
}

func (c *Cluster) subnet(az string) network.Subnet {
	for _, sn := range c.Subnets {
		if sn.AZ == az {
			return sn
		}
	}
	return network.Subnet{}
}

// addrInUse returns whether an address of a subnet is taken by an HSM of
// any of the tenant's clusters: clusters can share subnets, addresses
// cannot be shared. It reads the tenant's index (see trackHsm); the lock is
// held.
func (s *Service) addrInUse(t Tenant, subnetID string) func(netip.Addr) bool {
	var used map[netip.Addr]int
	if ts := s.lookupTenant(t); ts != nil {
		used = ts.addrs[subnetID]
	}
	return func(a netip.Addr) bool { return used[a] > 0 }
}

// trackHsm adds (delta 1) or removes (delta -1) h in its tenant's counts:
// HSMs in the tenant, and the addresses of HSM interfaces per subnet.
// Every HSM entering or leaving a cluster of the tenant map goes through
// it, so CreateHsm does not scan the account's clusters.
func (ts *tenantState) trackHsm(h *Hsm, delta int) {
	ts.hsms += delta
	if h.SubnetID == "" {
		return
	}
	for _, a := range hsmAddrs(h) {
		m := ts.addrs[h.SubnetID]
		if m == nil {
			m = map[netip.Addr]int{}
			ts.addrs[h.SubnetID] = m
		}
		if m[a] += delta; m[a] <= 0 {
			delete(m, a)
			if len(m) == 0 {
				delete(ts.addrs, h.SubnetID)
			}
		}
	}
}

// hsmAddrs returns the addresses of h's interface (IPv4, and IPv6 in a
// dual-stack cluster).
func hsmAddrs(h *Hsm) []netip.Addr {
	var out []netip.Addr
	for _, ip := range [2]string{h.EniIP, h.EniIPv6} {
		if a, err := netip.ParseAddr(ip); err == nil {
			out = append(out, a)
		}
	}
	return out
}

func (s *Service) advanceHsm(c *Cluster, h *Hsm, at time.Time, p *pending) {
	h.Due = time.Time{}
	switch h.State {
	case HsmCreateInProgress:
		h.State = HsmActive
		h.StateMessage = msgHsmCreated
		if c.State == ClusterUninitialized && c.Csr == "" {
			c.Partition = 1
			csr, err := h.csr, error(nil)
			if csr == "" { // made before a restart, or in another state
				csr, err = clusterCSR(h.Identity, c.Partition, c.Mode, c.HsmType)
			}
			h.csr = ""
			if err != nil {
				s.log.Error("generate cluster CSR", "cluster", c.ID, "err", err)
			} else {
				c.Csr = csr
				c.CsrHsmID = h.ID
			}
		}
		if c.baseState() == ClusterActive {
			s.takeBackup(c, at, p)
		}
	case HsmDeleteInProgress:
		s.removeHsm(c, h, p)
		// Deleted when DeleteHsm started, unless that was lost to a restart.
		s.deleteHsmInterface(c, h, true, p)
		if c.State == ClusterDegraded && !slices.ContainsFunc(c.Hsms, func(o *Hsm) bool { return o.State == HsmDegraded }) {
			c.State, c.StateBeforeDegraded = c.baseState(), ""
		}
		if c.CsrHsmID == h.ID && c.State == ClusterUninitialized {
			// The CSR belonged to this HSM's key; it goes with it.
			c.Csr, c.CsrHsmID = "", ""
		}
		if len(c.Hsms) == 0 {
			c.NextBackup = time.Time{}
		}
	}
	p.cluster(c)
}

// DeleteHsmInput selects the HSM to delete: exactly one of HsmID, EniID, EniIP.
type DeleteHsmInput struct {
	ClusterID string
	HsmID     string
	EniID     string
	EniIP     string
}

// DeleteHsm starts deleting an HSM and returns its id.
func (s *Service) DeleteHsm(t Tenant, in DeleteHsmInput) (string, error) {
	n := 0
	for _, v := range []string{in.HsmID, in.EniID, in.EniIP} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return "", errf(KindInvalidRequest, "Specify exactly one of HsmId, EniId or EniIp to identify the HSM to delete (got %d).", n)
	}
	var id string
	err := s.commit("DeleteHsm", func(now time.Time, p *pending) error {
		c, err := s.getCluster(t, in.ClusterID)
		if err != nil {
			return err
		}
		var h *Hsm
		for _, x := range c.Hsms {
			if (in.HsmID != "" && x.ID == in.HsmID) || (in.EniID != "" && x.EniID == in.EniID) || (in.EniIP != "" && x.EniIP == in.EniIP) {
				h = x
			}
		}
		if h == nil {
			what := "HSM " + in.HsmID
			if in.EniID != "" {
				what = "HSM with ENI " + in.EniID
			} else if in.EniIP != "" {
				what = "HSM with ENI IP " + in.EniIP
			}
			return errf(KindNotFound, "%s not found in cluster %s.", what, c.ID)
		}
		switch h.State {
		case HsmDeleteInProgress:
			return errf(KindInvalidRequest, "HSM %s is already being deleted.", h.ID)
		case HsmCreateInProgress:
			return errf(KindInvalidRequest, "HSM %s is still being created; wait until it is ACTIVE before deleting it.", h.ID)
		}
		if st := c.baseState(); st == ClusterModifyInProgress || st == ClusterRollbackInProgress {
			return errf(KindInvalidRequest, "Cluster %s is %s; HSMs cannot be deleted until it completes.", c.ID, c.State)
		}
		if c.baseState() == ClusterActive {
			s.takeBackup(c, now, p)
		}
		h.State = HsmDeleteInProgress
		h.StateMessage = ""
		h.Due = now.Add(s.cfg.Delays.HsmDelete)
		s.scheduleHsm(c, h)
		// The interface goes now, so that it is gone before the HSM
		// leaves the cluster (a Terraform destroy then deletes the subnet).
		s.deleteHsmInterface(c, h, false, p)
		p.cluster(c)
		id = h.ID
		return nil
	})
	return id, err
}

// InitializeCluster checks the signed cluster certificate and starts
// initialization.
func (s *Service) InitializeCluster(t Tenant, clusterID, signedCert, trustAnchor string) (*Cluster, error) {
	var out *Cluster
	err := s.commit("InitializeCluster", func(now time.Time, p *pending) error {
		c, err := s.getCluster(t, clusterID)
		if err != nil {
			return err
		}
		if c.State != ClusterUninitialized {
			return errf(KindInvalidRequest, "Cluster %s is %s; only an UNINITIALIZED cluster can be initialized.", c.ID, c.State)
		}
		if !c.Initializable() {
			return errf(KindInvalidRequest, "Cluster %s has no CSR yet: create an HSM and wait until it is ACTIVE, then sign the ClusterCsr from DescribeClusters.", c.ID)
		}
		if err := pki.VerifyInitialization(c.Csr, signedCert, trustAnchor, certificateTime(now)); err != nil {
			var ie *pki.InitError
			if errors.As(err, &ie) && !ie.Internal {
				return errf(KindInvalidRequest, "%s", ie.Reason)
			}
			return fmt.Errorf("verify cluster certificate: %w", err)
		}
		c.ClusterCertificate = signedCert
		c.State = ClusterInitializeInProgress
		c.StateMessage = msgInitializing
		c.Due = now.Add(s.cfg.Delays.ClusterInitialize)
		s.scheduleCluster(c)
		p.cluster(c)
		out = s.clone(c)
		return nil
	})
	return out, err
}

// newIdentity makes the keys and certificates of HSM id, and the cluster
// CSR signed by its key when withCSR is set. It is slow (two RSA keys, four
// RSA signatures: about 5 ms of a core beyond the keys) and runs outside
// the lock, one identity at a time, so that concurrent CreateHsm calls
// leave the other cores to every other request (the binary makes them in
// a helper process; see pki.IdentityProcess).
func (s *Service) newIdentity(id, mode, hsmType string, withCSR bool) (*pki.HSMIdentity, string, error) {
	auth, err := s.Authority()
	if err != nil {
		return nil, "", err
	}
	s.identities <- struct{}{}
	defer func() { <-s.identities }()
	identity, csr, err := s.identitySources().NewIdentity(auth, pki.IdentityRequest{
		HsmID:     id,
		Now:       s.clock.Now(),
		Partition: 1,
		NonFIPS:   mode == ModeNonFIPS,
		HSM1:      hsmType == HsmTypeHsm1,
		CSR:       withCSR,
	})
	if err != nil {
		return nil, "", fmt.Errorf("generate HSM identity: %w", err)
	}
	return identity, csr, nil
}

// clusterCSR is the CSR an HSM's key signs for a cluster of this mode and type.
func clusterCSR(id *pki.HSMIdentity, partition int, mode, hsmType string) (string, error) {
	return pki.ClusterCSR(id, partition, mode == ModeNonFIPS, hsmType == HsmTypeHsm1)
}
