package cloudhsm

import "time"

// Reset deletes every cluster and backup, of one account when account is
// not empty, or of every account.
func (s *Service) Reset(account string) error {
	return s.commit(CauseAdmin+"reset", func(now time.Time, p *pending) error {
		for t, ts := range s.tenants {
			if account != "" && t.Account != account {
				continue
			}
			for _, c := range ts.clusterOrder {
				if c.State != ClusterDeleted { // a DELETED cluster's group is gone
					s.deleteSecurityGroup(c, p)
				}
				for _, h := range c.Hsms {
					s.ids.releaseHsm(h.ID)
				}
				p.dropCluster(c)
			}
			for _, b := range ts.backupOrder {
				p.dropBackup(b)
			}
			delete(s.tenants, t)
		}
		// Events of removed tenants are ignored when they fire.
		return nil
	})
}
