package cloudhsm

import (
	"slices"
	"strings"
	"time"
)

// taggable finds the tags of a cluster or backup by id, and a function that
// records the change.
func (s *Service) taggable(t Tenant, id string, p *pending) (*[]Tag, func(), error) {
	switch {
	case strings.HasPrefix(id, "cluster-"):
		c, err := s.getCluster(t, id)
		if err != nil {
			return nil, nil, err
		}
		return &c.Tags, func() { p.cluster(c) }, nil
	case strings.HasPrefix(id, "backup-"):
		b, err := s.getBackup(t, id)
		if err != nil {
			return nil, nil, err
		}
		if b.State == BackupDeleted {
			return nil, nil, errf(KindNotFound, "Backup %s not found in account %s, region %s.", id, t.Account, t.Region)
		}
		return &b.Tags, func() { p.backup(b) }, nil
	}
	return nil, nil, errf(KindInvalidRequest, "ResourceId %s is neither a cluster id nor a backup id.", id)
}

// TagResource adds tags to a resource or overwrites their values.
func (s *Service) TagResource(t Tenant, id string, tags []Tag) error {
	if err := checkTags(tags); err != nil {
		return err
	}
	return s.commit("TagResource", func(now time.Time, p *pending) error {
		cur, save, err := s.taggable(t, id, p)
		if err != nil {
			return err
		}
		next := slices.Clone(*cur)
		for _, tag := range tags {
			i := slices.IndexFunc(next, func(x Tag) bool { return x.Key == tag.Key })
			if i >= 0 {
				next[i].Value = tag.Value
			} else {
				next = append(next, tag)
			}
		}
		if len(next) > MaxTags {
			return errf(KindLimitExceeded, "Resource %s would have %d tags; a resource can have at most %d tags.", id, len(next), MaxTags)
		}
		*cur = sortTags(next)
		save()
		return nil
	})
}

// UntagResource removes tags by key; absent keys are ignored.
func (s *Service) UntagResource(t Tenant, id string, keys []string) error {
	return s.commit("UntagResource", func(now time.Time, p *pending) error {
		cur, save, err := s.taggable(t, id, p)
		if err != nil {
			return err
		}
		*cur = slices.DeleteFunc(slices.Clone(*cur), func(x Tag) bool { return slices.Contains(keys, x.Key) })
		save()
		return nil
	})
}

// TagPosition is where a previous ListTags page ended: the last key
// returned starts with Prefix, and Matches recognises it.
type TagPosition struct {
	Prefix  string
	Matches func(key string) bool
}

// ListTags returns up to limit tags, sorted by key, after the position (nil:
// from the first), and whether more remain.
func (s *Service) ListTags(t Tenant, id string, after *TagPosition, limit int) ([]Tag, bool, error) {
	var out []Tag
	more := false
	err := s.read(func(time.Time) error {
		cur, _, err := s.taggable(t, id, nil) // read only: no save
		if err != nil {
			return err
		}
		tags := *cur
		i := 0
		if after != nil {
			i, _ = slices.BinarySearchFunc(tags, after.Prefix, func(x Tag, k string) int { return strings.Compare(x.Key, k) })
			// Skip past the key that ended the previous page. If it is gone,
			// continue from the first key after the prefix.
			for j := i; j < len(tags) && strings.HasPrefix(tags[j].Key, after.Prefix); j++ {
				if after.Matches(tags[j].Key) {
					i = j + 1
					break
				}
			}
		}
		rest := tags[i:]
		if len(rest) > limit {
			rest, more = rest[:limit], true
		}
		out = slices.Clone(rest)
		return nil
	})
	if out == nil {
		out = []Tag{}
	}
	return out, more, err
}
