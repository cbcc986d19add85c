package cloudhsm

import "time"

// DegradeHsm marks an HSM DEGRADED and its cluster DEGRADED.
func (s *Service) DegradeHsm(t Tenant, clusterID, hsmID string) (*Cluster, error) {
	return s.mutateHsm("degrade", t, clusterID, hsmID, func(c *Cluster, h *Hsm) error {
		if h.State != HsmActive {
			return errf(KindInvalidRequest, "HSM %s is %s; only an ACTIVE HSM can be degraded.", h.ID, h.State)
		}
		h.State = HsmDegraded
		h.StateMessage = "HSM is degraded."
		if c.State != ClusterDegraded {
			c.StateBeforeDegraded = c.State
			c.State = ClusterDegraded
		}
		return nil
	})
}

// HealHsm returns a DEGRADED HSM to ACTIVE, and its cluster to its state
// before degradation once no HSM is degraded.
func (s *Service) HealHsm(t Tenant, clusterID, hsmID string) (*Cluster, error) {
	return s.mutateHsm("heal", t, clusterID, hsmID, func(c *Cluster, h *Hsm) error {
		if h.State != HsmDegraded {
			return errf(KindInvalidRequest, "HSM %s is %s; only a DEGRADED HSM can be healed.", h.ID, h.State)
		}
		h.State = HsmActive
		h.StateMessage = msgHsmCreated
		for _, o := range c.Hsms {
			if o.State == HsmDegraded {
				return nil
			}
		}
		if c.State == ClusterDegraded {
			c.State, c.StateBeforeDegraded = c.baseState(), ""
		}
		return nil
	})
}

func (s *Service) mutateHsm(name string, t Tenant, clusterID, hsmID string, fn func(*Cluster, *Hsm) error) (*Cluster, error) {
	var out *Cluster
	err := s.commit(CauseAdmin+name, func(now time.Time, p *pending) error {
		c, err := s.getCluster(t, clusterID)
		if err != nil {
			return err
		}
		for _, h := range c.Hsms {
			if h.ID == hsmID {
				if err := fn(c, h); err != nil {
					return err
				}
				p.cluster(c)
				out = s.clone(c)
				return nil
			}
		}
		return errf(KindNotFound, "HSM %s not found in cluster %s.", hsmID, clusterID)
	})
	return out, err
}
