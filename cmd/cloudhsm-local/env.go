package main

import (
	"flag"
	"fmt"
	"sort"
	"strings"
	"time"
)

// envName is the environment variable of flag name.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// otherEnv are the CLOUDHSM_LOCAL_* variables that are not a server flag's
// but are the project's own: the admin client's endpoint (its token is
// the --admin-token variable). Variables starting with envTestPrefix are
// set by the test suite for the child processes it starts.
var otherEnv = []string{envEndpoint}

const envTestPrefix = envPrefix + "TEST_"

// envTestClockOffset is a test's hook (a Go duration): it moves this
// process's clock, as a host whose clock is off would, so that the replica
// suite can show that replicas of one database agree on time whatever
// their hosts' clocks say.
const envTestClockOffset = envTestPrefix + "LOCAL_CLOCK_OFFSET"

// applyTestEnv sets the config's fields of the envTestPrefix variables in
// env.
func (c *config) applyTestEnv(env map[string]string) error {
	v := env[envTestClockOffset]
	if v == "" {
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%s=%q is not a Go duration such as -2h", envTestClockOffset, v)
	}
	c.localClockOffset = d
	return nil
}

// envSettings are environ's CLOUDHSM_LOCAL_* variables.
func envSettings(environ []string) map[string]string {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, envPrefix) {
			env[k] = v
		}
	}
	return env
}

// applyEnv sets every flag of fs whose variable env holds. A value the
// flag cannot take is refused with the variable, the value and what the
// flag accepts.
func applyEnv(fs *flag.FlagSet, env map[string]string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v, ok := env[name]; ok && err == nil {
			if f.Value.Set(v) != nil {
				err = fmt.Errorf("%s=%q is not %s (the variable of --%s)", name, v, accepted(f.Value), f.Name)
			}
		}
	})
	return err
}

// accepted says what a flag's value may be, by its type.
func accepted(v flag.Value) string {
	g, ok := v.(flag.Getter)
	if !ok {
		return "a value this flag accepts"
	}
	switch g.Get().(type) {
	case bool:
		return "a boolean: use true or false (also accepted, as Go's strconv.ParseBool does: 1, 0, t, f, T, F, TRUE, FALSE, True, False)"
	case int, int64, uint, uint64:
		return "a whole number such as 1024 (decimal, or 0x... hexadecimal)"
	case float64:
		return "a number such as 0.5"
	case time.Duration:
		return "a Go duration: a number and a unit (ns, us, ms, s, m, h), such as 500ms, 30s, 5m or 1h30m"
	default:
		return "a value this flag accepts"
	}
}

// unknownEnv warns of every CLOUDHSM_LOCAL_* variable in env that is no
// setting of cloudhsm-local (a typo such as CLOUDHSM_LOCAL_DATADIR would
// otherwise be ignored in silence), with the closest known one if any is
// close.
func unknownEnv(fs *flag.FlagSet, env map[string]string) []string {
	known := append([]string(nil), otherEnv...)
	fs.VisitAll(func(f *flag.Flag) { known = append(known, envName(f.Name)) })
	isKnown := make(map[string]bool, len(known))
	for _, k := range known {
		isKnown[k] = true
	}
	var warnings []string
	for name := range env {
		if isKnown[name] || strings.HasPrefix(name, envTestPrefix) {
			continue
		}
		w := fmt.Sprintf("%s is not a setting of cloudhsm-local and is ignored", name)
		if s := closest(name, known); s != "" {
			w += fmt.Sprintf(" (did you mean %s?)", s)
		}
		warnings = append(warnings, w)
	}
	sort.Strings(warnings)
	return warnings
}

// closest returns the name of known nearest to name, if it is near enough
// to be a typo of it: at most two edits away, counting a missing or extra
// underscore as none.
func closest(name string, known []string) string {
	name = strings.TrimPrefix(name, envPrefix)
	best, bestD := "", 3
	for _, k := range known {
		short := strings.TrimPrefix(k, envPrefix)
		d := min(editDistance(name, short), editDistance(strings.ReplaceAll(name, "_", ""), strings.ReplaceAll(short, "_", "")))
		if d < bestD && d < len(short)/2 || d < bestD && d == 0 {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
