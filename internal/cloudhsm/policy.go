package cloudhsm

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// policyBackup resolves the ResourceArn of the policy operations to one of
// the caller's own backups.
func (s *Service) policyBackup(t Tenant, arn string) (*Backup, error) {
	if arn == "" {
		return nil, errf(KindInvalidRequest, "ResourceArn is required: give the ARN of a backup, arn:aws:cloudhsm:<region>:<account>:backup/<backup-id>.")
	}
	owner, id, ok := parseBackupARN(arn)
	if !ok {
		return nil, errf(KindInvalidRequest, "Resource policies are supported only for backups; %s is not a backup ARN.", arn)
	}
	if owner != t {
		return nil, errf(KindAccessDenied, "Backup %s belongs to account %s in %s; resource policies can be read or changed only by the backup's owner in its own region.", id, owner.Account, owner.Region)
	}
	return s.getBackup(t, id)
}

// GetResourcePolicy returns a backup's policy ("" when none).
func (s *Service) GetResourcePolicy(t Tenant, arn string) (string, error) {
	var policy string
	err := s.read(func(time.Time) error {
		b, err := s.policyBackup(t, arn)
		if err != nil {
			return err
		}
		policy = b.Policy
		return nil
	})
	return policy, err
}

// PutResourcePolicy sets a backup's policy and returns the stored policy.
func (s *Service) PutResourcePolicy(t Tenant, arn, policy string) (string, error) {
	var out string
	err := s.commit("PutResourcePolicy", func(now time.Time, p *pending) error {
		b, err := s.policyBackup(t, arn)
		if err != nil {
			return err
		}
		if b.State != BackupReady {
			return errf(KindInvalidRequest, "Backup %s is %s; only a READY backup can be shared.", b.ID, b.State)
		}
		if _, err := parsePolicy(policy, b.ARN()); err != nil {
			return err
		}
		s.setPolicy(b, policy)
		p.backup(b)
		out = policy
		return nil
	})
	return out, err
}

// DeleteResourcePolicy removes a backup's policy and returns it.
func (s *Service) DeleteResourcePolicy(t Tenant, arn string) (string, error) {
	var out string
	err := s.commit("DeleteResourcePolicy", func(now time.Time, p *pending) error {
		b, err := s.policyBackup(t, arn)
		if err != nil {
			return err
		}
		out = b.Policy
		s.setPolicy(b, "")
		p.backup(b)
		return nil
	})
	return out, err
}

// setPolicy sets b's policy (a valid one, or "" for none) and keeps its
// parsed accounts and its tenant's index of backups with a policy in step;
// the write lock is held.
func (s *Service) setPolicy(b *Backup, policy string) {
	ts := s.tenant(b.Tenant)
	if b.Policy != "" {
		ts.withPolicy = removeBySeq(ts.withPolicy, b.Seq, backupSeq)
	}
	b.Policy, b.sharedAccounts = policy, nil
	if policy != "" {
		b.sharedAccounts = policyAccounts(b)
		ts.withPolicy = insertBySeq(ts.withPolicy, b, backupSeq)
	}
}

// policyAccounts returns the accounts b's policy allows (none if the
// stored policy does not parse).
func policyAccounts(b *Backup) []string {
	accts, err := parsePolicy(b.Policy, b.ARN())
	if err != nil {
		return nil
	}
	return accts
}

// sharedWith reports whether b's policy shares it with account.
func (s *Service) sharedWith(b *Backup, account string) bool {
	return b.Policy != "" && b.State == BackupReady && slices.Contains(b.sharedAccounts, account)
}

// sharedBackups lists, in Seq order, the backups of other accounts in t's
// region that are shared with t.
func (s *Service) sharedBackups(t Tenant) []*Backup {
	var out []*Backup
	for ot, ts := range s.tenants {
		if ot.Region != t.Region || ot.Account == t.Account {
			continue
		}
		for _, b := range ts.withPolicy {
			if s.sharedWith(b, t.Account) {
				out = append(out, b)
			}
		}
	}
	slices.SortFunc(out, func(a, b *Backup) int { return cmpSeq(a.Seq, b.Seq) })
	return out
}

var accountRe = regexp.MustCompile(`^[0-9]{12}$`)

var rootARNRe = regexp.MustCompile(`^arn:aws(?:-us-gov)?:iam::([0-9]{12}):root$`)

// parsePolicy validates an IAM-style resource policy for backupARN and
// returns the accounts it allows.
func parsePolicy(doc, backupARN string) ([]string, error) {
	bad := func(format string, args ...any) error {
		return errf(KindInvalidRequest, "Invalid resource policy: "+format, args...)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(doc), &raw); err != nil {
		return nil, bad("the policy is not a JSON object (%v).", err)
	}
	var version string
	if v, ok := raw["Version"]; ok {
		if err := json.Unmarshal(v, &version); err != nil || (version != "2012-10-17" && version != "2008-10-17") {
			return nil, bad("Version must be \"2012-10-17\".")
		}
	} else {
		return nil, bad("the Version element is missing; use \"Version\": \"2012-10-17\".")
	}
	st, ok := raw["Statement"]
	if !ok {
		return nil, bad("the Statement element is missing.")
	}
	var stmts []map[string]json.RawMessage
	if err := json.Unmarshal(st, &stmts); err != nil {
		var one map[string]json.RawMessage
		if err2 := json.Unmarshal(st, &one); err2 != nil {
			return nil, bad("Statement must be an object or a list of objects.")
		}
		stmts = []map[string]json.RawMessage{one}
	}
	if len(stmts) == 0 {
		return nil, bad("Statement is empty.")
	}
	var allow, deny []string
	for i, stmt := range stmts {
		n := i + 1
		var effect string
		if err := json.Unmarshal(stmt["Effect"], &effect); err != nil || (effect != "Allow" && effect != "Deny") {
			return nil, bad("statement %d: Effect must be \"Allow\" or \"Deny\".", n)
		}
		accts, err := policyPrincipals(stmt["Principal"])
		if err != nil {
			return nil, bad("statement %d: %s", n, err.Error())
		}
		actions, err := stringOrList(stmt["Action"])
		if err != nil || len(actions) == 0 {
			return nil, bad("statement %d: Action must be a string or a list of strings such as \"cloudhsm:DescribeBackups\".", n)
		}
		for _, a := range actions {
			if !strings.HasPrefix(a, "cloudhsm:") {
				return nil, bad("statement %d: action %q is not a CloudHSM action (cloudhsm:...).", n, a)
			}
		}
		resources, err := stringOrList(stmt["Resource"])
		if err != nil || len(resources) == 0 {
			return nil, bad("statement %d: Resource must name this backup, %s.", n, backupARN)
		}
		for _, r := range resources {
			if r != backupARN {
				return nil, bad("statement %d: resource %q is not this backup; a backup's policy can name only %s.", n, r, backupARN)
			}
		}
		if effect == "Allow" {
			allow = append(allow, accts...)
		} else {
			deny = append(deny, accts...)
		}
	}
	out := slices.DeleteFunc(slices.Clone(allow), func(a string) bool { return slices.Contains(deny, a) })
	slices.Sort(out)
	return slices.Compact(out), nil
}

// policyProblem is a sentence telling the user what is wrong with a
// policy's Principal; it becomes part of the refusal's message.
type policyProblem string

func (p policyProblem) Error() string { return string(p) }

func policyPrincipals(raw json.RawMessage) ([]string, error) {
	if raw == nil {
		return nil, policyProblem(`Principal is missing; name the AWS accounts to share with, e.g. {"AWS": "111122223333"}.`)
	}
	var p map[string]json.RawMessage
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, policyProblem(`Principal must be an object such as {"AWS": ["111122223333"]}; "*" is not allowed.`)
	}
	vals, err := stringOrList(p["AWS"])
	if err != nil || len(vals) == 0 {
		return nil, policyProblem(`Principal must have an "AWS" element listing account ids or root ARNs.`)
	}
	var out []string
	for _, v := range vals {
		switch {
		case accountRe.MatchString(v):
			out = append(out, v)
		case rootARNRe.MatchString(v):
			out = append(out, rootARNRe.FindStringSubmatch(v)[1])
		default:
			return nil, policyProblem(fmt.Sprintf("principal %q is not a 12-digit account id or an arn:aws:iam::<account>:root ARN.", v))
		}
	}
	return out, nil
}

func stringOrList(raw json.RawMessage) ([]string, error) {
	if raw == nil {
		return nil, fmt.Errorf("missing")
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, err
	}
	return many, nil
}
