// Package crossclient drives the same scenarios through the clients people
// use against cloudhsm-local: the AWS CLI (once with --endpoint-url, once
// with only AWS_ENDPOINT_URL_CLOUDHSM_V2), boto3 and the AWS SDK for
// JavaScript v3, plus the runnable examples in examples/. aws-sdk-go-v2 is
// covered by the Go tests of package cloudhsmlocal.
//
// Each client suite is a script (cli/run.sh, boto3/run.py, js/run.mjs) that
// prints one JSON line per scenario; see SCENARIOS.md. This driver builds the
// server once, starts one fresh server per suite, runs the suites in
// parallel, fails on any failed or missing scenario, fails when two clients
// observe different outcomes for the same scenario, and writes (with
// UPDATE_COMPAT=1) or checks COMPATIBILITY.md from the results.
//
// A missing client (no aws, no python3 or boto3, no node or no
// js/node_modules) skips its suite loudly, or fails it when CI=true.
package crossclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

// scenarios is what every client suite must report, in order.
var scenarios = []string{
	"lifecycle",
	"paginate.describe-clusters",
	"paginate.describe-backups",
	"paginate.list-tags",
	"error.CloudHsmInvalidRequestException",
	"error.CloudHsmResourceNotFoundException",
	"error.CloudHsmResourceLimitExceededException",
	"error.CloudHsmTagException",
	"error.CloudHsmAccessDeniedException",
	"error.CloudHsmServiceException",
	"error.CloudHsmInternalFailureException",
	"isolation.account",
	"isolation.region",
	"network.eni-ip-unique-in-subnet",
}

// scriptTimeout bounds one client script. On an idle 2-core machine the
// slowest, the AWS CLI suite, takes about a minute; allow for a busy one.
const scriptTimeout = 8 * time.Minute

// result is one JSON line of a client suite.
type result struct {
	Client   string   `json:"client"`
	Version  string   `json:"version"`
	Scenario string   `json:"scenario"`
	OK       bool     `json:"ok"`
	Skipped  bool     `json:"skipped"`
	Outcome  []string `json:"outcome"`
	Detail   string   `json:"detail"`
	Note     string   `json:"note"`
}

// suite is one client's script.
type suite struct {
	name    string   // subtest name
	label   string   // column name in COMPATIBILITY.md
	argv    []string // relative to the repository root
	env     []string
	require func(root string) string // "" when the client is there, else what is missing
}

// run is what a suite produced.
type run struct {
	suite   suite
	missing string // the client was missing: the suite did not run
	results []result
	failed  bool
}

// example is one script of examples/.
type example struct {
	name    string
	argv    []string
	require func(root string) string
	passed  bool
	ran     bool
	output  string
}

func TestCrossClient(t *testing.T) {
	if testing.Short() {
		t.Skip("the cross-client suite runs real clients (about a minute); skipped in -short mode")
	}
	root := repoRoot(t)
	bin := buildServer(t)

	suites := []suite{
		{
			name: "aws-cli/endpoint-url", label: "AWS CLI, --endpoint-url",
			argv: []string{"bash", "crossclient/cli/run.sh"}, env: []string{"CLI_ENDPOINT_MODE=flag"},
			require: needCLI,
		},
		{
			// The CLI is slow (about half a second of CPU a call): the second
			// pass proves endpoint discovery through the environment with the
			// lifecycle (which calls all 18 operations) and the errors.
			name: "aws-cli/env-var", label: "AWS CLI, AWS_ENDPOINT_URL_CLOUDHSM_V2",
			argv:    []string{"bash", "crossclient/cli/run.sh"},
			env:     []string{"CLI_ENDPOINT_MODE=env", "CLI_SCENARIOS=lifecycle error.*"},
			require: needCLI,
		},
		{
			name: "boto3", label: "boto3",
			argv: []string{"python3", "crossclient/boto3/run.py"}, require: needBoto3,
		},
		{
			name: "aws-sdk-js-v3", label: "AWS SDK for JavaScript v3",
			argv: []string{"node", "crossclient/js/run.mjs"}, require: needJS,
		},
	}
	examples := []*example{
		{name: "cli-ceremony.sh", argv: []string{"bash", "examples/cli-ceremony.sh"}, require: needCLI},
		{name: "boto3_inventory.py", argv: []string{"python3", "examples/boto3_inventory.py"}, require: needBoto3},
	}

	runs := make([]*run, len(suites))
	t.Run("clients", func(t *testing.T) {
		for i, s := range suites {
			runs[i] = &run{suite: s}
			t.Run(s.name, func(t *testing.T) {
				t.Parallel()
				runSuite(t, root, bin, runs[i])
			})
		}
		t.Run("examples", func(t *testing.T) {
			t.Parallel()
			runExamples(t, root, bin, examples)
		})
	})

	compareOutcomes(t, runs)
	doc := compatibility(root, runs, examples)
	path := filepath.Join(root, "crossclient", "COMPATIBILITY.md")
	complete := true
	for _, r := range runs {
		complete = complete && len(r.results) > 0
	}
	for _, ex := range examples {
		complete = complete && ex.ran
	}
	if !complete {
		if os.Getenv("UPDATE_COMPAT") == "1" {
			t.Errorf("not writing COMPATIBILITY.md: not every client suite and example ran")
		} else {
			t.Logf("COMPATIBILITY.md not compared: not every client suite and example ran")
		}
		return
	}
	if os.Getenv("UPDATE_COMPAT") == "1" {
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
		if err := updateReadme(filepath.Join(root, "README.md"), doc); err != nil {
			t.Fatal(err)
		}
		return
	}
	old, err := os.ReadFile(path)
	switch {
	case err != nil:
		t.Logf("%s: %v (UPDATE_COMPAT=1 writes it)", path, err)
	case string(old) != doc:
		t.Logf("COMPATIBILITY.md differs from this run's results (UPDATE_COMPAT=1 rewrites it):\n%s", lineDiff(string(old), doc))
	default:
		t.Logf("COMPATIBILITY.md matches this run's results")
	}
}

// ---- clients ----

func lookPaths(names ...string) string {
	var miss []string
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			miss = append(miss, n)
		}
	}
	if len(miss) > 0 {
		return "not on PATH: " + strings.Join(miss, ", ")
	}
	return ""
}

func needCLI(string) string { return lookPaths("bash", "aws", "openssl", "curl") }

func needBoto3(string) string {
	if m := lookPaths("python3"); m != "" {
		return m
	}
	if out, err := exec.Command("python3", "-c", "import boto3").CombinedOutput(); err != nil {
		return "python3 cannot import boto3: " + strings.TrimSpace(string(out))
	}
	return ""
}

func needJS(root string) string {
	if m := lookPaths("node", "openssl"); m != "" {
		return m
	}
	pkg := filepath.Join(root, "crossclient", "js", "node_modules", "@aws-sdk", "client-cloudhsm-v2", "package.json")
	if _, err := os.Stat(pkg); err != nil {
		return "crossclient/js/node_modules is not installed (run: cd crossclient/js && npm ci)"
	}
	return ""
}

// missingClient skips, or fails under CI=true, a test whose client is absent.
func missingClient(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and a client of the cross-client suite is missing: %s", what)
	}
	t.Skipf("\n\n*** CROSS-CLIENT SUITE SKIPPED: %s ***\n*** (under CI=true this fails) ***\n", what)
}

// ---- the server ----

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(wd)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("cannot find the repository root above %s: %v", wd, err)
	}
	return root
}

// buildServer builds the server as the Docker image does (CGO_ENABLED=0).
func buildServer(t *testing.T) string {
	t.Helper()
	bin, err := testkit.BuildServerBinary(t.TempDir(), "CGO_ENABLED=0")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// scriptEnv is the environment of a client script: the machine's, less
// anything AWS or suite related, plus what the script needs.
func scriptEnv(endpoint string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") || k == "CLOUDHSM_ENDPOINT" || strings.HasPrefix(k, "CLI_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "CLOUDHSM_ENDPOINT="+endpoint, "PYTHONDONTWRITEBYTECODE=1", "NO_COLOR=1")
	return append(env, extra...)
}

// runScript runs argv from the repository root and returns its stdout, its
// stderr and its error.
func runScript(t *testing.T, root string, argv, env []string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = root
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s ran in %s", strings.Join(argv, " "), time.Since(start).Round(100*time.Millisecond))
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %s: %w", scriptTimeout, err)
	}
	return stdout.String(), stderr.String(), err
}

func runSuite(t *testing.T, root, bin string, r *run) {
	if m := r.suite.require(root); m != "" {
		r.missing = m
		missingClient(t, r.suite.name+": "+m)
		return
	}
	t.Cleanup(func() { r.failed = t.Failed() })
	endpoint := testkit.StartBinary(t, bin)
	stdout, stderr, err := runScript(t, root, r.suite.argv, scriptEnv(endpoint, r.suite.env...))
	for _, line := range strings.Split(stdout, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		var res result
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &res) != nil {
			t.Logf("output: %s", line)
			continue
		}
		r.results = append(r.results, res)
	}
	if err != nil {
		t.Errorf("%s: %v\nstderr:\n%s", strings.Join(r.suite.argv, " "), err, testkit.Tail(stderr, 4000))
	} else if strings.TrimSpace(stderr) != "" {
		t.Logf("stderr:\n%s", testkit.Tail(stderr, 2000))
	}
	seen := map[string]int{}
	for _, res := range r.results {
		seen[res.Scenario]++
		switch {
		case res.Client == "" || res.Version == "":
			t.Errorf("%s: result without client or version: %+v", res.Scenario, res)
		case res.Skipped:
			t.Logf("skip %-45s %s", res.Scenario, res.Detail)
		case res.OK:
			t.Logf("ok   %-45s %s%s", res.Scenario, res.Detail, noteSuffix(res.Note))
		default:
			t.Errorf("FAIL %s (%s): %s\noutcome: %s", res.Scenario, res.Client, res.Detail, strings.Join(res.Outcome, " | "))
		}
		if !slices.Contains(scenarios, res.Scenario) {
			t.Errorf("unknown scenario %q", res.Scenario)
		}
	}
	for _, s := range scenarios {
		switch seen[s] {
		case 1:
		case 0:
			t.Errorf("no result for scenario %s", s)
		default:
			t.Errorf("%d results for scenario %s", seen[s], s)
		}
	}
}

func noteSuffix(note string) string {
	if note == "" {
		return ""
	}
	return " [note: " + note + "]"
}

// ---- examples ----

var inventoryCountsRe = regexp.MustCompile(`(?m)^total: (\d+) clusters?, (\d+) backups?`)

func runExamples(t *testing.T, root, bin string, examples []*example) {
	endpoint := testkit.StartBinary(t, bin)
	// The examples read the usual AWS configuration: give them an empty one.
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	env := scriptEnv(endpoint, "AWS_CONFIG_FILE="+empty, "AWS_SHARED_CREDENTIALS_FILE="+empty, "AWS_MAX_ATTEMPTS=1")
	ceremony := false
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			if m := ex.require(root); m != "" {
				missingClient(t, ex.name+": "+m)
				return
			}
			ex.ran = true
			stdout, stderr, err := runScript(t, root, ex.argv, env)
			ex.output = stdout
			t.Logf("stdout:\n%s", testkit.Tail(stdout, 6000))
			if err != nil {
				t.Fatalf("%s: %v\nstderr:\n%s", strings.Join(ex.argv, " "), err, testkit.Tail(stderr, 4000))
			}
			switch ex.name {
			case "cli-ceremony.sh":
				for _, want := range []string{"HsmCertificate.crt: OK", "is ACTIVE"} {
					if strings.Count(stdout, want) == 0 {
						t.Errorf("ceremony output lacks %q", want)
					}
				}
				if n := strings.Count(stdout, "HsmCertificate.crt: OK"); n != 2 {
					t.Errorf("want 2 chains verified by openssl, got %d", n)
				}
				ceremony = !t.Failed()
			case "boto3_inventory.py":
				m := inventoryCountsRe.FindStringSubmatch(stdout)
				if m == nil {
					t.Fatalf("inventory output lacks its \"total: N clusters, M backups\" line")
				}
				// The ceremony left one ACTIVE cluster and its activation backup.
				if ceremony && (m[1] == "0" || m[2] == "0") {
					t.Errorf("after the ceremony the inventory shows %s clusters and %s backups, want at least one of each", m[1], m[2])
				}
			}
			ex.passed = !t.Failed()
		})
	}
}

// ---- cross-client comparison ----

// compareOutcomes fails when two clients observed different outcomes for the
// same scenario (skipped results and missing clients aside).
func compareOutcomes(t *testing.T, runs []*run) {
	t.Helper()
	for _, sc := range scenarios {
		type seen struct {
			client  string
			outcome []string
		}
		var all []seen
		for _, r := range runs {
			for _, res := range r.results {
				if res.Scenario == sc && !res.Skipped {
					all = append(all, seen{r.suite.label, res.Outcome})
				}
			}
		}
		for _, o := range all[min(1, len(all)):] {
			if !slices.Equal(o.outcome, all[0].outcome) {
				t.Errorf("scenario %s: %s and %s observed different outcomes:\n%s", sc, all[0].client, o.client, outcomeDiff(all[0].outcome, o.outcome))
			}
		}
	}
}

func outcomeDiff(a, b []string) string {
	var sb strings.Builder
	for i := 0; i < max(len(a), len(b)); i++ {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			fmt.Fprintf(&sb, "  #%d: %q vs %q\n", i, x, y)
		}
	}
	return sb.String()
}

// ---- COMPATIBILITY.md ----

const (
	readmeBegin = "<!-- compatibility:begin (generated by UPDATE_COMPAT=1 go test ./crossclient/) -->"
	readmeEnd   = "<!-- compatibility:end -->"
)

// updateReadme puts the summary table of a generated COMPATIBILITY.md
// between the README's compatibility markers, so that table too comes from
// a run of the suite and is never typed by hand.
func updateReadme(path, doc string) error {
	readme, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	start := strings.Index(doc, "| client |")
	if start < 0 {
		return fmt.Errorf("no summary table in the generated document")
	}
	table := doc[start:]
	if end := strings.Index(table, "\n\n"); end >= 0 {
		table = table[:end+1]
	}
	text := string(readme)
	i, j := strings.Index(text, readmeBegin), strings.Index(text, readmeEnd)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %q ... %q markers", path, readmeBegin, readmeEnd)
	}
	text = text[:i+len(readmeBegin)] + "\n" + table + text[j:]
	return os.WriteFile(path, []byte(text), 0o644)
}

var kernelRe = regexp.MustCompile(`\s*(Linux|Darwin|Windows)/\S+`)

func compatibility(root string, runs []*run, examples []*example) string {
	var b strings.Builder
	b.WriteString("# Client compatibility\n\n")
	b.WriteString("Generated by `UPDATE_COMPAT=1 go test ./crossclient/ -run TestCrossClient -count=1` from the results of\n")
	b.WriteString("the cross-client suite (see `SCENARIOS.md`); do not edit by hand. Every client runs the same\n")
	b.WriteString("scenarios against a fresh server, and the driver fails when two clients observe different\n")
	b.WriteString("outcomes for the same scenario.\n\n")

	b.WriteString("| client | version | scenarios passed | skipped |\n| --- | --- | --- | --- |\n")
	for _, r := range runs {
		if r.missing != "" || len(r.results) == 0 {
			fmt.Fprintf(&b, "| %s | not installed | not run | |\n", r.suite.label)
			continue
		}
		passed, total, skipped := 0, 0, 0
		for _, res := range r.results {
			switch {
			case res.Skipped:
				skipped++
			case res.OK:
				passed++
				total++
			default:
				total++
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %d/%d | %d |\n", r.suite.label, kernelRe.ReplaceAllString(r.results[0].Version, ""), passed, total, skipped)
	}
	fmt.Fprintf(&b, "| aws-sdk-go-v2 | %s | covered by the Go tests of `cloudhsmlocal/` | |\n", goSDKVersion(root))
	b.WriteString(terraformRow(root) + "\n")

	b.WriteString("## Scenarios\n\n| scenario |")
	for _, r := range runs {
		fmt.Fprintf(&b, " %s |", r.suite.label)
	}
	b.WriteString("\n| --- |")
	for range runs {
		b.WriteString(" --- |")
	}
	b.WriteString("\n")
	reasons := map[string]string{}
	for _, sc := range scenarios {
		fmt.Fprintf(&b, "| %s |", sc)
		for _, r := range runs {
			cell := "not run"
			for _, res := range r.results {
				if res.Scenario != sc {
					continue
				}
				switch {
				case res.Skipped:
					cell = "skipped"
					if strings.Contains(res.Detail, "fault injection") {
						reasons[sc] = res.Detail
					}
				case res.OK:
					cell = "pass"
				default:
					cell = "**FAIL**"
				}
			}
			fmt.Fprintf(&b, " %s |", cell)
		}
		b.WriteString("\n")
	}

	b.WriteString("\n## Coverage notes\n\n")
	b.WriteString("- `CloudHsmServiceException` and `CloudHsmInternalFailureException` cannot be provoked by a\n")
	b.WriteString("  request: the suites provoke them with the admin API's fault injection (`POST\n")
	b.WriteString("  /_cloudhsm-local/faults`, one DescribeClusters call), with the clients' retries off.\n")
	for _, sc := range scenarios {
		if why, ok := reasons[sc]; ok {
			fmt.Fprintf(&b, "- `%s` skipped: %s.\n", strings.TrimPrefix(sc, "error."), why)
		}
	}
	b.WriteString("- Terraform runs scenarios of its own (`terraform/`, its own package): its row is copied\n")
	b.WriteString("  from `terraform/RESULTS.md`, which that suite writes with UPDATE_COMPAT=1 and which lists them.\n")
	b.WriteString("- The second AWS CLI pass (endpoint from `AWS_ENDPOINT_URL_CLOUDHSM_V2` only) runs the lifecycle,\n")
	b.WriteString("  which calls all 18 operations, and the error scenarios; the other scenarios run in the\n")
	b.WriteString("  `--endpoint-url` pass only, to keep the CLI's share of the run short (each CLI call costs\n")
	b.WriteString("  about half a second of CPU).\n")
	b.WriteString("- Which clients read `AWS_ENDPOINT_URL_CLOUDHSM_V2`: the AWS CLI (1.45.11, the second pass) and\n")
	b.WriteString("  boto3/botocore 1.43.11 do. The JavaScript SDK 3.332.0 pinned here does not: it ignores the\n")
	b.WriteString("  variable and calls AWS's real host (`cloudhsmv2.us-east-1.amazonaws.com`), so its suite passes\n")
	b.WriteString("  `endpoint` to the client; give it `endpoint`, or use a release of the SDK that reads the\n")
	b.WriteString("  variable. aws-sdk-go-v2's tests here set `BaseEndpoint`; the variable is not tested with it.\n")

	var notes []string
	for _, r := range runs {
		for _, res := range r.results {
			if res.Note != "" {
				for _, n := range strings.Split(res.Note, "; ") {
					n = fmt.Sprintf("%s: %s", r.suite.label, n)
					if !slices.Contains(notes, n) {
						notes = append(notes, n)
					}
				}
			}
		}
	}
	if len(notes) > 0 {
		b.WriteString("\n## Client notes\n\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}

	b.WriteString("\n## Examples\n\n| example | result |\n| --- | --- |\n")
	for _, ex := range examples {
		res := "not run (client missing)"
		if ex.ran {
			res = "**FAIL**"
			if ex.passed {
				res = "pass"
			}
		}
		fmt.Fprintf(&b, "| `examples/%s` | %s |\n", ex.name, res)
	}
	return b.String()
}

// terraformRow is the Terraform suite's summary row, copied from the
// results that suite generates (package crossclient/terraform).
func terraformRow(root string) string {
	data, err := os.ReadFile(filepath.Join(root, "crossclient", "terraform", "RESULTS.md"))
	if err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "| Terraform |") {
				return line + "\n"
			}
		}
	}
	return "| Terraform | no results (UPDATE_COMPAT=1 go test ./crossclient/terraform/) | not run | |\n"
}

var goSDKRe = regexp.MustCompile(`github\.com/aws/aws-sdk-go-v2/service/cloudhsmv2 (v\S+)`)

func goSDKVersion(root string) string {
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "unknown"
	}
	if m := goSDKRe.FindSubmatch(data); m != nil {
		return "service/cloudhsmv2 " + string(m[1])
	}
	return "unknown"
}

// lineDiff lists the lines only in a (-) or only in b (+).
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var sb strings.Builder
	for _, l := range al {
		if !slices.Contains(bl, l) {
			fmt.Fprintf(&sb, "- %s\n", l)
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			fmt.Fprintf(&sb, "+ %s\n", l)
		}
	}
	return sb.String()
}
