package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// A value a variable's flag cannot take is refused with the variable, the
// value and what is accepted, for every type of flag.
func TestEnvValueRefusals(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want []string
	}{
		{"CLOUDHSM_LOCAL_IN_MEMORY=yes", []string{`CLOUDHSM_LOCAL_IN_MEMORY="yes"`, "true or false", "1, 0, t, f", "strconv.ParseBool"}},
		{"CLOUDHSM_LOCAL_PPROF=on", []string{`CLOUDHSM_LOCAL_PPROF="on"`, "true or false"}},
		{"CLOUDHSM_LOCAL_MAX_CONNECTIONS=many", []string{`CLOUDHSM_LOCAL_MAX_CONNECTIONS="many"`, "whole number such as 1024"}},
		{"CLOUDHSM_LOCAL_QUOTA_HSMS=6.5", []string{`CLOUDHSM_LOCAL_QUOTA_HSMS="6.5"`, "whole number"}},
		{"CLOUDHSM_LOCAL_READ_TIMEOUT=30", []string{`CLOUDHSM_LOCAL_READ_TIMEOUT="30"`, "Go duration", "30s"}},
		{"CLOUDHSM_LOCAL_ACTIVATION=sometimes", []string{`--activation must be auto or manual, got "sometimes"`, `CLOUDHSM_LOCAL_ACTIVATION="sometimes"`}},
		{"CLOUDHSM_LOCAL_PROFILE=slow", []string{"--profile must be fast or realistic", `CLOUDHSM_LOCAL_PROFILE="slow"`}},
		{"CLOUDHSM_LOCAL_LOG_LEVEL=verbose", []string{"debug, info, warn or error", `CLOUDHSM_LOCAL_LOG_LEVEL="verbose"`}},
		{"CLOUDHSM_LOCAL_KEYGEN=gpu", []string{"--keygen must be process or inline", `CLOUDHSM_LOCAL_KEYGEN="gpu"`}},
		{"CLOUDHSM_LOCAL_LOG_FORMAT=xml", []string{`--log-format must be json or text, got "xml"`, `CLOUDHSM_LOCAL_LOG_FORMAT="xml"`}},
	} {
		_, _, err := parseConfig(nil, []string{tc.env}, io.Discard)
		if err == nil {
			t.Errorf("%s: accepted", tc.env)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", tc.env, err, w)
			}
		}
	}
	// A value given on the command line is the flag's, not the variable's.
	_, _, err := parseConfig([]string{"--activation", "never"}, []string{"CLOUDHSM_LOCAL_ACTIVATION=manual"}, io.Discard)
	if err == nil || strings.Contains(err.Error(), "CLOUDHSM_LOCAL_ACTIVATION") {
		t.Errorf("--activation never over the environment: %v", err)
	}
}

// A CLOUDHSM_LOCAL_* variable that is no setting is warned about, with
// the one it probably meant; the project's own variables are not.
func TestUnknownEnvWarned(t *testing.T) {
	for _, tc := range []struct {
		env, want string
	}{
		{"CLOUDHSM_LOCAL_DATADIR=/tmp/x", "CLOUDHSM_LOCAL_DATADIR is not a setting of cloudhsm-local and is ignored (did you mean CLOUDHSM_LOCAL_DATA_DIR?)"},
		{"CLOUDHSM_LOCAL_INMEMORY=true", "(did you mean CLOUDHSM_LOCAL_IN_MEMORY?)"},
		{"CLOUDHSM_LOCAL_LISTN=:1", "(did you mean CLOUDHSM_LOCAL_LISTEN?)"},
		{"CLOUDHSM_LOCAL_QUOTA_CLUSTER=3", "(did you mean CLOUDHSM_LOCAL_QUOTA_CLUSTERS?)"},
		{"CLOUDHSM_LOCAL_ENDPINT=http://x", "(did you mean CLOUDHSM_LOCAL_ENDPOINT?)"},
		{"CLOUDHSM_LOCAL_PORT=4599", "CLOUDHSM_LOCAL_PORT is not a setting of cloudhsm-local and is ignored"},
	} {
		_, warnings, err := parseConfig([]string{"--in-memory"}, []string{tc.env}, io.Discard)
		if err != nil {
			t.Errorf("%s: %v", tc.env, err)
		}
		if len(warnings) != 1 || !strings.Contains(warnings[0], tc.want) {
			t.Errorf("%s: warnings %q, want one with %q", tc.env, warnings, tc.want)
		}
		if tc.env == "CLOUDHSM_LOCAL_PORT=4599" && strings.Contains(warnings[0], "did you mean") {
			t.Errorf("%s: a far-fetched suggestion: %q", tc.env, warnings[0])
		}
	}
	own := []string{
		"CLOUDHSM_LOCAL_DATA_DIR=/tmp/x", "CLOUDHSM_LOCAL_ADMIN_TOKEN=t", "CLOUDHSM_LOCAL_ENDPOINT=http://127.0.0.1:4599",
		"CLOUDHSM_LOCAL_TEST_CHILD=1", "CLOUDHSM_LOCAL_TEST_TRUNCATED_DB=/tmp/x", "HOME=/root",
	}
	if _, warnings, err := parseConfig(nil, own, io.Discard); err != nil || len(warnings) != 0 {
		t.Errorf("the project's own variables: warnings %q, err %v", warnings, err)
	}

	// The command prints the warning on stderr, also when it then fails.
	clearEnv(t)
	t.Setenv("CLOUDHSM_LOCAL_DATADIR", t.TempDir())
	_, stderr, err := runCmd(t, "--in-memory", "--listen", "256.0.0.1:1")
	if err == nil {
		t.Fatal("listening on 256.0.0.1 succeeded")
	}
	if want := "cloudhsm-local: warning: CLOUDHSM_LOCAL_DATADIR is not a setting of cloudhsm-local and is ignored (did you mean CLOUDHSM_LOCAL_DATA_DIR?)\n"; !strings.Contains(stderr, want) {
		t.Errorf("stderr %q lacks %q", stderr, want)
	}
}

// The replica suite's clock offset is read with the other variables, from
// the environment parseConfig is given, not from the process's; a value
// that is no duration is refused before anything starts.
func TestTestClockOffsetVariable(t *testing.T) {
	t.Parallel()
	c, warnings, err := parseConfig([]string{"--in-memory"}, []string{"CLOUDHSM_LOCAL_TEST_LOCAL_CLOCK_OFFSET=-3h"}, io.Discard)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("parseConfig: warnings %q, err %v", warnings, err)
	}
	if c.localClockOffset != -3*time.Hour {
		t.Errorf("localClockOffset = %v, want -3h", c.localClockOffset)
	}
	clk := localClock(c.localClockOffset)
	if clk == nil {
		t.Fatal("localClock(-3h) is the real clock")
	}
	if behind := time.Since(clk()); behind < 3*time.Hour-time.Minute || behind > 3*time.Hour+time.Minute {
		t.Errorf("the local clock is %v behind, want 3h", behind)
	}
	if c, _, _ := parseConfig([]string{"--in-memory"}, nil, io.Discard); c.localClockOffset != 0 || localClock(c.localClockOffset) != nil {
		t.Errorf("without the variable: offset %v, want the real clock", c.localClockOffset)
	}
	_, _, err = parseConfig([]string{"--in-memory"}, []string{"CLOUDHSM_LOCAL_TEST_LOCAL_CLOCK_OFFSET=2"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `CLOUDHSM_LOCAL_TEST_LOCAL_CLOCK_OFFSET="2" is not a Go duration`) {
		t.Errorf("an offset that is no duration: %v", err)
	}
}
