package reliability

// The hostile input corpus: its file format, the loader, and the generator
// that writes testdata/hostile/<Operation>/<case>.json. Run
//
//	go test ./reliability/ -run TestHostileCorpusUpToDate -update-hostile
//
// to rewrite the generated cases after changing the generator. Hand-written
// cases may sit next to them; their names must start with "x-".

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var updateHostile = flag.Bool("update-hostile", false, "rewrite the generated cases of testdata/hostile")

// hostileCase is one file of the corpus.
type hostileCase struct {
	// Name is the file's path under testdata/hostile without ".json".
	Name string `json:"name"`
	// Operation is the operation under attack, "*" for protocol-level cases.
	Operation   string `json:"operation"`
	Category    string `json:"category"`
	Description string `json:"description,omitempty"`
	// Method and Path default to POST and /.
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
	// Target is the X-Amz-Target value; JSON null sends no header. It must
	// be present in every file.
	Target json.RawMessage `json:"target"`
	// ContentType defaults to application/x-amz-json-1.1; null sends none.
	ContentType json.RawMessage `json:"contentType,omitempty"`
	// The body is exactly one of Body, BodyBase64 or BodyParts (none: empty).
	Body       *string    `json:"body,omitempty"`
	BodyBase64 string     `json:"bodyBase64,omitempty"`
	BodyParts  []bodyPart `json:"bodyParts,omitempty"`
	// Chunked sends the body with Transfer-Encoding: chunked (no length).
	Chunked bool `json:"chunked,omitempty"`
	// ContentLength, when set, is sent instead of the body's real length.
	ContentLength *int64 `json:"contentLength,omitempty"`

	ExpectStatus int `json:"expectStatus"`
	// ExpectCode is the AWS error code; empty when ExpectStatus is 200.
	ExpectCode string `json:"expectCode,omitempty"`
	// ExpectMessageContains must appear in the error Message.
	ExpectMessageContains string `json:"expectMessageContains,omitempty"`
	// ExpectMessageExcludes must not appear in the error Message.
	ExpectMessageExcludes string `json:"expectMessageExcludes,omitempty"`
}

// bodyPart is a piece of a body: text or base64 bytes, repeated Repeat times
// (default once), so that megabyte bodies need no megabyte files.
type bodyPart struct {
	Text   string `json:"text,omitempty"`
	Base64 string `json:"base64,omitempty"`
	Repeat int    `json:"repeat,omitempty"`
}

// target returns the header value and whether to send the header.
func (c *hostileCase) target() (string, bool, error) {
	if c.Target == nil {
		return "", false, errors.New(`"target" is required (null for no X-Amz-Target header)`)
	}
	if string(c.Target) == "null" {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(c.Target, &s); err != nil {
		return "", false, fmt.Errorf("target: %w", err)
	}
	return s, true, nil
}

func (c *hostileCase) contentType() (string, bool, error) {
	if c.ContentType == nil {
		return jsonType, true, nil
	}
	if string(c.ContentType) == "null" {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(c.ContentType, &s); err != nil {
		return "", false, fmt.Errorf("contentType: %w", err)
	}
	return s, true, nil
}

func (c *hostileCase) body() ([]byte, error) {
	n := 0
	if c.Body != nil {
		n++
	}
	if c.BodyBase64 != "" {
		n++
	}
	if c.BodyParts != nil {
		n++
	}
	if n > 1 {
		return nil, errors.New("give at most one of body, bodyBase64, bodyParts")
	}
	switch {
	case c.Body != nil:
		return []byte(*c.Body), nil
	case c.BodyBase64 != "":
		return base64.StdEncoding.DecodeString(c.BodyBase64)
	}
	var buf bytes.Buffer
	for i, p := range c.BodyParts {
		if p.Text != "" && p.Base64 != "" {
			return nil, fmt.Errorf("bodyParts[%d]: text and base64 both given", i)
		}
		piece := []byte(p.Text)
		if p.Base64 != "" {
			b, err := base64.StdEncoding.DecodeString(p.Base64)
			if err != nil {
				return nil, fmt.Errorf("bodyParts[%d]: %w", i, err)
			}
			piece = b
		}
		r := p.Repeat
		if r == 0 {
			r = 1
		}
		if r < 0 || r > 1<<24 {
			return nil, fmt.Errorf("bodyParts[%d]: repeat %d out of range", i, r)
		}
		buf.Write(bytes.Repeat(piece, r))
	}
	return buf.Bytes(), nil
}

// checkBody validates the body fields without building the body.
func (c *hostileCase) checkBody() error {
	n := 0
	if c.Body != nil {
		n++
	}
	if c.BodyBase64 != "" {
		n++
		if _, err := base64.StdEncoding.DecodeString(c.BodyBase64); err != nil {
			return fmt.Errorf("bodyBase64: %w", err)
		}
	}
	if c.BodyParts != nil {
		n++
	}
	if n > 1 {
		return errors.New("give at most one of body, bodyBase64, bodyParts")
	}
	for i, p := range c.BodyParts {
		if p.Text != "" && p.Base64 != "" {
			return fmt.Errorf("bodyParts[%d]: text and base64 both given", i)
		}
		if _, err := base64.StdEncoding.DecodeString(p.Base64); err != nil {
			return fmt.Errorf("bodyParts[%d]: %w", i, err)
		}
		if p.Repeat < 0 || p.Repeat > 1<<24 {
			return fmt.Errorf("bodyParts[%d]: repeat %d out of range", i, p.Repeat)
		}
	}
	return nil
}

func (c *hostileCase) validate() error {
	if _, _, err := c.target(); err != nil {
		return err
	}
	if _, _, err := c.contentType(); err != nil {
		return err
	}
	if err := c.checkBody(); err != nil {
		return err
	}
	if c.Operation != "*" && !slices.Contains(operations, c.Operation) {
		return fmt.Errorf("unknown operation %q", c.Operation)
	}
	if c.Category == "" {
		return errors.New("no category")
	}
	if c.ExpectStatus == 0 {
		return errors.New("no expectStatus")
	}
	if (c.ExpectStatus == 200) != (c.ExpectCode == "") {
		return errors.New("expectCode must be given exactly when expectStatus is not 200")
	}
	return nil
}

const corpusDir = "../testdata/hostile"

// loadCorpus reads every case file under testdata/hostile.
func loadCorpus(t testing.TB) []*hostileCase {
	t.Helper()
	var cases []*hostileCase
	err := filepath.WalkDir(corpusDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var c hostileCase
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		rel, _ := filepath.Rel(corpusDir, path)
		want := strings.TrimSuffix(filepath.ToSlash(rel), ".json")
		if c.Name != want {
			return fmt.Errorf("%s: name %q, want %q (the file's path)", path, c.Name, want)
		}
		if err := c.validate(); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		cases = append(cases, &c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatalf("no cases under %s: run go test ./reliability/ -run TestHostileCorpusUpToDate -update-hostile", corpusDir)
	}
	sort.Slice(cases, func(i, j int) bool { return cases[i].Name < cases[j].Name })
	return cases
}

// requiredCategories must be covered for every operation.
var requiredCategories = []string{
	"baseline", "wrong-type", "null", "huge-string", "huge-list", "deep-nesting", "invalid-utf8",
	"duplicate-keys", "oversize", "content-type", "target", "truncated", "empty",
}

// TestHostileCorpusUpToDate checks that the generated cases on disk match
// the generator, and that every operation is attacked in every category.
func TestHostileCorpusUpToDate(t *testing.T) {
	gen := generateCorpus()
	if *updateHostile {
		writeCorpus(t, gen)
	}
	all := loadCorpus(t)
	onDisk := map[string]*hostileCase{}
	for _, c := range all {
		onDisk[c.Name] = c
	}
	for _, g := range gen {
		d, ok := onDisk[g.Name]
		if !ok {
			t.Errorf("%s: generated case missing on disk (run with -update-hostile)", g.Name)
			continue
		}
		a, _ := json.Marshal(g)
		b, _ := json.Marshal(d)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: file differs from the generator (run with -update-hostile)", g.Name)
		}
		delete(onDisk, g.Name)
	}
	for name := range onDisk {
		if !strings.HasPrefix(filepath.Base(name), "x-") {
			t.Errorf("%s: not generated and not named x-*: stale file?", name)
		}
	}
	cover := map[string]map[string]int{}
	for _, c := range all {
		if cover[c.Operation] == nil {
			cover[c.Operation] = map[string]int{}
		}
		cover[c.Operation][c.Category]++
	}
	for _, op := range operations {
		for _, cat := range requiredCategories {
			if cover[op][cat] == 0 {
				t.Errorf("%s: no case in category %s", op, cat)
			}
		}
	}
}

func writeCorpus(t *testing.T, cases []*hostileCase) {
	t.Helper()
	// Remove generated files first, keeping hand-written x-* cases.
	_ = filepath.WalkDir(corpusDir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".json") && !strings.HasPrefix(d.Name(), "x-") {
			_ = os.Remove(path)
		}
		return nil
	})
	for _, c := range cases {
		path := filepath.Join(corpusDir, filepath.FromSlash(c.Name)+".json")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(c); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %d cases under %s", len(cases), corpusDir)
}

// ---- the generator ----

// Ids that pass the model's patterns and name nothing that exists.
const (
	gCluster = "cluster-abcdefghijk"
	gBackup  = "backup-abcdefghijk"
	gHsm     = "hsm-abcdefghijk"
	gSubnet  = "subnet-0123456789abcdef0"
	gArn     = "arn:aws:cloudhsm:us-east-1:123456789012:backup/backup-abcdefghijk"
)

const (
	codeSer      = "SerializationException"
	codeInvalid  = "CloudHsmInvalidRequestException"
	codeNotFound = "CloudHsmResourceNotFoundException"
	codeUnknown  = "UnknownOperationException"
	codeTooLarge = "RequestEntityTooLargeException"
	codeMedia    = "UnsupportedMediaTypeException"
	codeMethod   = "MethodNotAllowedException"
)

// member is one member of a JSON object, its value as JSON text.
type member struct{ name, value string }

// obj is a JSON object with members in order.
type obj []member

func (o obj) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(m.name))
		b.WriteByte(':')
		b.WriteString(m.value)
	}
	b.WriteByte('}')
	return b.String()
}

// with returns o with member name set to value (added at the end if absent).
func (o obj) with(name, value string) obj {
	out := slices.Clone(o)
	for i := range out {
		if out[i].name == name {
			out[i].value = value
			return out
		}
	}
	return append(out, member{name, value})
}

// plus returns o with an extra member, even if one of that name exists.
func (o obj) plus(name, value string) obj { return append(slices.Clone(o), member{name, value}) }

func q(s string) string { return strconv.Quote(s) }

// expectation is a status and code ("" for 200).
type expectation struct {
	status int
	code   string
	msg    string
}

var (
	okay       = expectation{status: 200}
	serErr     = expectation{status: 400, code: codeSer}
	invalidErr = expectation{status: 400, code: codeInvalid}
	notFound   = expectation{status: 400, code: codeNotFound}
)

// wrongType is a member given a value of the wrong JSON type.
type wrongType struct{ label, member, value string }

// hugeList builds a body whose member holds n copies of elem.
type hugeList struct {
	label  string
	member string
	elem   string
	n      int
	want   expectation
}

// opSpec describes how to attack one operation.
type opSpec struct {
	op string
	// base passes validation and is refused (or answered) by the operation
	// without storing anything.
	base     obj
	baseWant expectation
	// emptyWant is the answer to an empty body (= {}).
	emptyWant expectation
	// str is a string member of base (required when the input has one);
	// hugeWant is the answer when it is 100,000 characters long.
	str      string
	hugeWant expectation
	// required members of the input (nil if none).
	required   []string
	wrongTypes []wrongType
	hugeLists  []hugeList
	// intMember and boolMember, when set, get numeric and boolean abuse.
	intMember  string
	boolMember string
	// atLimit adds a body of exactly the 1 MiB limit (the wire treats every
	// operation alike; three of them carry the case, to keep -race fast).
	atLimit bool
	// smuggle is a lower-case alias of a member with a value that the model
	// would refuse, to check that names are matched case-sensitively.
	smuggle member
}

func specs() []opSpec {
	tag := `{"Key":"k","Value":"v"}`
	notFoundMsg := func(id string) expectation { return expectation{400, codeNotFound, id} }
	return []opSpec{
		{
			op:        "CopyBackupToRegion",
			base:      obj{{"DestinationRegion", q("us-west-2")}, {"BackupId", q(gBackup)}},
			baseWant:  notFoundMsg(gBackup),
			emptyWant: invalidErr,
			str:       "BackupId", hugeWant: invalidErr,
			required: []string{"DestinationRegion", "BackupId"},
			wrongTypes: []wrongType{
				{"backupid-number", "BackupId", "42"},
				{"destinationregion-list", "DestinationRegion", `["us-west-2"]`},
				{"taglist-object", "TagList", tag},
				{"taglist-of-strings", "TagList", `["k"]`},
			},
			hugeLists: []hugeList{{"taglist-10000", "TagList", tag, 10000, invalidErr}},
			smuggle:   member{"backupid", q("backup-SMUGGLEDzzzzz")},
		},
		{
			op:      "CreateCluster",
			atLimit: true,
			// An HsmType that passes the pattern but is not offered: refused
			// before anything is resolved or stored.
			base:      obj{{"HsmType", q("hsm9.unknown")}, {"SubnetIds", `[` + q(gSubnet) + `]`}, {"TagList", `[` + tag + `]`}},
			baseWant:  expectation{400, codeInvalid, "HsmType is not supported"},
			emptyWant: invalidErr,
			str:       "HsmType", hugeWant: invalidErr,
			required: []string{"HsmType", "SubnetIds"},
			wrongTypes: []wrongType{
				{"hsmtype-number", "HsmType", "2"},
				{"subnetids-string", "SubnetIds", q(gSubnet)},
				{"subnetids-of-numbers", "SubnetIds", "[1,2]"},
				{"tag-key-number", "TagList", `[{"Key":1,"Value":"v"}]`},
				{"retention-string", "BackupRetentionPolicy", q("DAYS")},
				{"retention-value-number", "BackupRetentionPolicy", `{"Type":"DAYS","Value":90}`},
			},
			hugeLists: []hugeList{
				{"subnetids-10000", "SubnetIds", q(gSubnet), 10000, invalidErr},
				{"taglist-10000", "TagList", tag, 10000, invalidErr},
			},
			// If the alias were honoured the cluster would be created.
			smuggle: member{"hsmtype", q("hsm2m.medium")},
		},
		{
			op:        "CreateHsm",
			base:      obj{{"ClusterId", q(gCluster)}, {"AvailabilityZone", q("us-east-1a")}},
			baseWant:  notFoundMsg(gCluster),
			emptyWant: invalidErr,
			str:       "ClusterId", hugeWant: invalidErr,
			required: []string{"ClusterId", "AvailabilityZone"},
			wrongTypes: []wrongType{
				{"clusterid-number", "ClusterId", "1"},
				{"availabilityzone-bool", "AvailabilityZone", "true"},
				{"ipaddress-number", "IpAddress", "10"},
			},
			hugeLists: []hugeList{{"clusterid-list-10000", "ClusterId", q(gCluster), 10000, serErr}},
			smuggle:   member{"clusterid", q("cluster-SMUGGLEDzzzzz")},
		},
		{
			op:        "DeleteBackup",
			atLimit:   true,
			base:      obj{{"BackupId", q(gBackup)}},
			baseWant:  notFoundMsg(gBackup),
			emptyWant: invalidErr,
			str:       "BackupId", hugeWant: invalidErr,
			required: []string{"BackupId"},
			wrongTypes: []wrongType{
				{"backupid-number", "BackupId", "1"},
				{"backupid-object", "BackupId", `{"BackupId":"` + gBackup + `"}`},
			},
			hugeLists: []hugeList{{"unknown-member-list-30000", "Unknown", "1", 30000, notFound}},
			smuggle:   member{"backupid", q("backup-SMUGGLEDzzzzz")},
		},
		{
			op:        "DeleteCluster",
			base:      obj{{"ClusterId", q(gCluster)}},
			baseWant:  notFoundMsg(gCluster),
			emptyWant: invalidErr,
			str:       "ClusterId", hugeWant: invalidErr,
			required: []string{"ClusterId"},
			wrongTypes: []wrongType{
				{"clusterid-number", "ClusterId", "1"},
				{"clusterid-list", "ClusterId", `["` + gCluster + `"]`},
			},
			hugeLists: []hugeList{{"clusterid-list-10000", "ClusterId", q(gCluster), 10000, serErr}},
			smuggle:   member{"clusterid", q("cluster-SMUGGLEDzzzzz")},
		},
		{
			op:        "DeleteHsm",
			base:      obj{{"ClusterId", q(gCluster)}, {"HsmId", q(gHsm)}},
			baseWant:  notFoundMsg(gCluster),
			emptyWant: invalidErr,
			str:       "ClusterId", hugeWant: invalidErr,
			required: []string{"ClusterId"},
			wrongTypes: []wrongType{
				{"hsmid-number", "HsmId", "1"},
				{"eniip-list", "EniIp", "[]"},
				{"clusterid-bool", "ClusterId", "false"},
			},
			hugeLists: []hugeList{{"unknown-member-list-30000", "Unknown", "1", 30000, notFound}},
			smuggle:   member{"clusterid", q("cluster-SMUGGLEDzzzzz")},
		},
		{
			op:        "DeleteResourcePolicy",
			base:      obj{{"ResourceArn", q(gArn)}},
			baseWant:  notFoundMsg(gBackup),
			emptyWant: expectation{400, codeInvalid, "ResourceArn"},
			str:       "ResourceArn", hugeWant: invalidErr,
			wrongTypes: []wrongType{
				{"resourcearn-number", "ResourceArn", "1"},
				{"resourcearn-object", "ResourceArn", "{}"},
			},
			hugeLists: []hugeList{{"resourcearn-list-10000", "ResourceArn", q(gArn), 10000, serErr}},
			smuggle:   member{"resourcearn", q("arn:aws:cloudhsm:us-east-1:123456789012:backup/backup-SMUGGLEDzzzzz")},
		},
		{
			op:        "DescribeBackups",
			base:      obj{{"Filters", `{"backupIds":["` + gBackup + `"]}`}, {"MaxResults", "10"}, {"SortAscending", "true"}},
			baseWant:  okay,
			emptyWant: okay,
			str:       "NextToken", hugeWant: invalidErr,
			wrongTypes: []wrongType{
				{"maxresults-string", "MaxResults", q("10")},
				{"filters-list", "Filters", `[]`},
				{"filters-value-string", "Filters", `{"states":"READY"}`},
				{"shared-number", "Shared", "1"},
			},
			hugeLists: []hugeList{
				{"filter-values-10000", "Filters", q(gBackup), 10000, okay},
				{"filter-keys-2000", "Filters", "", 2000, invalidErr},
			},
			intMember:  "MaxResults",
			boolMember: "SortAscending",
			smuggle:    member{"filters", `{"states":["SMUGGLED"]}`},
		},
		{
			op:        "DescribeClusters",
			atLimit:   true,
			base:      obj{{"Filters", `{"clusterIds":["` + gCluster + `"]}`}, {"MaxResults", "10"}},
			baseWant:  okay,
			emptyWant: okay,
			str:       "NextToken", hugeWant: invalidErr,
			wrongTypes: []wrongType{
				{"maxresults-string", "MaxResults", q("10")},
				{"filters-list", "Filters", `[]`},
				{"filters-value-string", "Filters", `{"states":"ACTIVE"}`},
				{"nexttoken-number", "NextToken", "5"},
			},
			hugeLists: []hugeList{
				{"filter-values-10000", "Filters", q(gCluster), 10000, okay},
				{"filter-keys-2000", "Filters", "", 2000, invalidErr},
			},
			intMember: "MaxResults",
			smuggle:   member{"filters", `{"states":["SMUGGLED"]}`},
		},
		{
			op:        "GetResourcePolicy",
			base:      obj{{"ResourceArn", q(gArn)}},
			baseWant:  notFoundMsg(gBackup),
			emptyWant: expectation{400, codeInvalid, "ResourceArn"},
			str:       "ResourceArn", hugeWant: invalidErr,
			wrongTypes: []wrongType{
				{"resourcearn-number", "ResourceArn", "1"},
				{"resourcearn-bool", "ResourceArn", "true"},
			},
			hugeLists: []hugeList{{"resourcearn-list-10000", "ResourceArn", q(gArn), 10000, serErr}},
			smuggle:   member{"resourcearn", q("arn:aws:cloudhsm:us-east-1:123456789012:backup/backup-SMUGGLEDzzzzz")},
		},
		{
			op:        "InitializeCluster",
			base:      obj{{"ClusterId", q(gCluster)}, {"SignedCert", q("MIIB")}, {"TrustAnchor", q("MIIB")}},
			baseWant:  notFoundMsg(gCluster),
			emptyWant: invalidErr,
			str:       "SignedCert", hugeWant: invalidErr,
			required: []string{"ClusterId", "SignedCert", "TrustAnchor"},
			wrongTypes: []wrongType{
				{"signedcert-number", "SignedCert", "1"},
				{"trustanchor-list", "TrustAnchor", `["MIIB"]`},
			},
			hugeLists: []hugeList{{"trustanchor-list-10000", "TrustAnchor", q("MIIB"), 10000, serErr}},
			smuggle:   member{"clusterid", q("cluster-SMUGGLEDzzzzz")},
		},
		{
			op:        "ListTags",
			base:      obj{{"ResourceId", q(gCluster)}},
			baseWant:  notFoundMsg(gCluster),
			emptyWant: invalidErr,
			str:       "ResourceId", hugeWant: invalidErr,
			required: []string{"ResourceId"},
			wrongTypes: []wrongType{
				{"resourceid-number", "ResourceId", "1"},
				{"maxresults-string", "MaxResults", q("5")},
				{"nexttoken-number", "NextToken", "5"},
			},
			hugeLists: []hugeList{{"resourceid-list-10000", "ResourceId", q(gCluster), 10000, serErr}},
			intMember: "MaxResults",
			smuggle:   member{"resourceid", q("cluster-SMUGGLEDzzzzz")},
		},
		{
			op:        "ModifyBackupAttributes",
			base:      obj{{"BackupId", q(gBackup)}, {"NeverExpires", "true"}},
			baseWant:  notFoundMsg(gBackup),
			emptyWant: invalidErr,
			str:       "BackupId", hugeWant: invalidErr,
			required: []string{"BackupId", "NeverExpires"},
			wrongTypes: []wrongType{
				{"neverexpires-string-true", "NeverExpires", q("true")},
				{"neverexpires-number", "NeverExpires", "1"},
				{"backupid-number", "BackupId", "1"},
			},
			hugeLists:  []hugeList{{"unknown-member-list-30000", "Unknown", "1", 30000, notFound}},
			boolMember: "NeverExpires",
			smuggle:    member{"backupid", q("backup-SMUGGLEDzzzzz")},
		},
		{
			op:        "ModifyCluster",
			base:      obj{{"ClusterId", q(gCluster)}, {"BackupRetentionPolicy", `{"Type":"DAYS","Value":"90"}`}},
			baseWant:  notFoundMsg(gCluster),
			emptyWant: invalidErr,
			str:       "ClusterId", hugeWant: invalidErr,
			required: []string{"ClusterId"},
			wrongTypes: []wrongType{
				{"retention-value-number", "BackupRetentionPolicy", `{"Type":"DAYS","Value":90}`},
				{"retention-list", "BackupRetentionPolicy", `[]`},
				{"hsmtype-number", "HsmType", "1"},
			},
			hugeLists: []hugeList{{"unknown-member-list-30000", "Unknown", "1", 30000, notFound}},
			smuggle:   member{"clusterid", q("cluster-SMUGGLEDzzzzz")},
		},
		{
			op:        "PutResourcePolicy",
			base:      obj{{"ResourceArn", q(gArn)}, {"Policy", q("{}")}},
			baseWant:  notFoundMsg(gBackup),
			emptyWant: expectation{400, codeInvalid, ""},
			str:       "Policy", hugeWant: invalidErr,
			wrongTypes: []wrongType{
				{"policy-object", "Policy", `{"Version":"2012-10-17"}`},
				{"resourcearn-number", "ResourceArn", "1"},
			},
			hugeLists: []hugeList{{"policy-list-10000", "Policy", q("{}"), 10000, serErr}},
			smuggle:   member{"resourcearn", q("arn:aws:cloudhsm:us-east-1:123456789012:backup/backup-SMUGGLEDzzzzz")},
		},
		{
			op:        "RestoreBackup",
			base:      obj{{"BackupId", q(gBackup)}},
			baseWant:  notFoundMsg(gBackup),
			emptyWant: invalidErr,
			str:       "BackupId", hugeWant: invalidErr,
			required: []string{"BackupId"},
			wrongTypes: []wrongType{
				{"backupid-number", "BackupId", "1"},
				{"backupid-null-in-list", "BackupId", "[null]"},
			},
			hugeLists: []hugeList{{"unknown-member-list-30000", "Unknown", "1", 30000, notFound}},
			smuggle:   member{"backupid", q("backup-SMUGGLEDzzzzz")},
		},
		{
			op:        "TagResource",
			base:      obj{{"ResourceId", q(gCluster)}, {"TagList", `[` + tag + `]`}},
			baseWant:  notFoundMsg(gCluster),
			emptyWant: invalidErr,
			str:       "ResourceId", hugeWant: invalidErr,
			required: []string{"ResourceId", "TagList"},
			wrongTypes: []wrongType{
				{"taglist-object", "TagList", tag},
				{"tag-value-number", "TagList", `[{"Key":"k","Value":1}]`},
				{"resourceid-number", "ResourceId", "1"},
			},
			hugeLists: []hugeList{{"taglist-10000", "TagList", tag, 10000, invalidErr}},
			smuggle:   member{"resourceid", q("cluster-SMUGGLEDzzzzz")},
		},
		{
			op:        "UntagResource",
			base:      obj{{"ResourceId", q(gCluster)}, {"TagKeyList", `["k"]`}},
			baseWant:  notFoundMsg(gCluster),
			emptyWant: invalidErr,
			str:       "ResourceId", hugeWant: invalidErr,
			required: []string{"ResourceId", "TagKeyList"},
			wrongTypes: []wrongType{
				{"tagkeylist-string", "TagKeyList", q("k")},
				{"tagkeylist-of-numbers", "TagKeyList", "[1]"},
			},
			hugeLists: []hugeList{{"tagkeylist-10000", "TagKeyList", q("k"), 10000, invalidErr}},
			smuggle:   member{"resourceid", q("cluster-SMUGGLEDzzzzz")},
		},
	}
}

// maxBody is the server's request body limit (1 MiB).
const maxBody = 1 << 20

func generateCorpus() []*hostileCase {
	var out []*hostileCase
	for _, s := range specs() {
		out = append(out, opCases(s)...)
	}
	out = append(out, genericCases()...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func strp(s string) *string { return &s }
func rawq(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

var rawNull = json.RawMessage("null")

func opCases(s opSpec) []*hostileCase {
	target := rawq(targetPrefix + s.op)
	var cases []*hostileCase
	add := func(cat, label, desc string, body []byte, want expectation, mod ...func(*hostileCase)) {
		c := &hostileCase{
			Name:                  s.op + "/" + cat + "-" + label,
			Operation:             s.op,
			Category:              cat,
			Description:           desc,
			Target:                target,
			ExpectStatus:          want.status,
			ExpectCode:            want.code,
			ExpectMessageContains: want.msg,
		}
		if body != nil {
			if utf8Valid(body) {
				c.Body = strp(string(body))
			} else {
				c.BodyBase64 = base64.StdEncoding.EncodeToString(body)
			}
		}
		for _, m := range mod {
			m(c)
		}
		cases = append(cases, c)
	}
	base := s.base.String()
	str := func(v string) []byte { return []byte(v) }

	// baseline: the body every other case is a variation of.
	add("baseline", "valid", "a well-formed request naming nothing that exists", str(base), s.baseWant)

	// empty bodies are {}.
	add("empty", "zero-bytes", "an empty body means {}", []byte{}, s.emptyWant)
	add("empty", "whitespace", "a body of only whitespace is not JSON (only a zero-length body means {})", str(" \r\n\t "), serErr)

	// nulls.
	add("null", "body-null", "the body is JSON null, not an object", str("null"), serErr)
	if len(s.required) > 0 {
		want := expectation{400, codeInvalid, "Member must not be null"}
		add("null", "required-member", "a required member is null, which is absent",
			str(s.base.with(s.required[0], "null").String()), want)
	} else {
		var o obj
		for _, m := range s.base {
			o = o.with(m.name, "null")
		}
		add("null", "all-members", "every member is null, which is absent: the same as {}", str(o.String()), s.emptyWant)
	}

	// non-objects at the top level.
	add("wrong-type", "body-array", "the body is an array", str("[]"), serErr)
	add("wrong-type", "body-string", "the body is a string", str(q(base)), serErr)
	for _, w := range s.wrongTypes {
		add("wrong-type", w.label, "member "+w.member+" has the wrong JSON type", str(s.base.with(w.member, w.value).String()), serErr)
	}

	// huge strings: 100,000 characters, far over every model bound; the
	// message must not echo them.
	{
		parts := splitParts(s.base.with(s.str, "\x00").String(), `"`, "a", 100000, `"`)
		add("huge-string", strings.ToLower(s.str)+"-100k", "member "+s.str+" is 100,000 characters long", nil, s.hugeWant,
			func(c *hostileCase) { c.BodyParts = parts; c.ExpectMessageExcludes = strings.Repeat("a", 1000) })
	}
	// huge lists.
	for _, h := range s.hugeLists {
		var parts []bodyPart
		if h.elem == "" { // a map with n distinct keys
			var b strings.Builder
			for i := 0; i < h.n; i++ {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, `"k%d":[]`, i)
			}
			parts = []bodyPart{{Text: s.base.with(h.member, "{"+b.String()+"}").String()}}
		} else {
			inner := h.elem
			if h.member == "Filters" {
				// {"<ids key>": [elem, elem, ...]}
				key := "clusterIds"
				if s.op == "DescribeBackups" {
					key = "backupIds"
				}
				parts = splitParts(s.base.with(h.member, `{"`+key+`":`+"\x00}").String(), "[", inner+",", h.n-1, inner+"]")
			} else {
				parts = splitParts(s.base.with(h.member, "\x00").String(), "[", inner+",", h.n-1, inner+"]")
			}
		}
		add("huge-list", h.label, fmt.Sprintf("member %s holds %d elements", h.member, h.n), nil, h.want,
			func(c *hostileCase) { c.BodyParts = parts })
	}

	// deep nesting.
	add("deep-nesting", "toplevel-10000-open-brackets", "10,000 [ and nothing else", nil, serErr,
		func(c *hostileCase) { c.BodyParts = []bodyPart{{Text: "[", Repeat: 10000}} })
	{
		parts := nestParts(s.base.with(s.str, "\x00").String(), "[", 10000, "", "]")
		add("deep-nesting", "member-10000-arrays", "member "+s.str+" is 10,000 nested arrays, balanced", nil, serErr,
			func(c *hostileCase) { c.BodyParts = parts })
	}
	{
		parts := nestParts(s.base.with("Unknown", "\x00").String(), `{"a":`, 10000, "1", "}")
		add("deep-nesting", "unknown-member-10000-objects", "an unknown member holds 10,000 nested objects, balanced", nil, serErr,
			func(c *hostileCase) { c.BodyParts = parts })
	}
	add("deep-nesting", "depth-40", "40 nested arrays in an unknown member", str(s.base.with("Unknown", strings.Repeat("[", 40)+strings.Repeat("]", 40)).String()), serErr)

	// invalid UTF-8.
	{
		b := []byte(s.base.with(s.str, "\"ab\xffcd\"").String())
		add("invalid-utf8", "byte-ff-in-value", "a string value holds the byte 0xFF", b, serErr)
		b = []byte(s.base.plus("k\xc3\x28", "1").String())
		add("invalid-utf8", "bad-sequence-in-key", "a member name holds C3 28, an invalid sequence", b, serErr)
		b = []byte(s.base.with(s.str, "\"\xc0\xaf\"").String())
		add("invalid-utf8", "overlong-slash", "a string value holds C0 AF, an overlong /", b, serErr)
		b = []byte(s.base.with(s.str, "\"\xed\xa0\x80\"").String())
		add("invalid-utf8", "encoded-surrogate", "a string value holds ED A0 80, a UTF-16 surrogate encoded as UTF-8", b, serErr)
	}

	// duplicate keys.
	{
		first := s.base[0]
		add("duplicate-keys", "same-value", "member "+first.name+" appears twice with the same value",
			str(s.base.plus(first.name, first.value).String()), serErr)
		add("duplicate-keys", "unknown-member-twice", "an unknown member appears twice",
			str(s.base.plus("Unknown", "1").plus("Unknown", "2").String()), serErr)
		// A member name that differs only by case is a different (unknown)
		// member: it must be ignored, not decoded into the real one.
		want := s.baseWant
		add("duplicate-keys", "case-variant-ignored", "member "+s.smuggle.name+" is not a member (names are case-sensitive) and must be ignored",
			str(s.base.plus(s.smuggle.name, s.smuggle.value).String()), want,
			func(c *hostileCase) { c.ExpectMessageExcludes = "SMUGGLED" })
	}

	// oversize bodies.
	{
		pad := maxBody + 1 - len(base)
		add("oversize", "content-length-1mib-plus-1", "1 MiB + 1 byte: the base body then spaces", nil, expectation{413, codeTooLarge, ""},
			func(c *hostileCase) { c.BodyParts = []bodyPart{{Text: base}, {Text: " ", Repeat: pad}} })
		add("oversize", "chunked-2mib", "2 MiB sent chunked, without a length", nil, expectation{413, codeTooLarge, ""},
			func(c *hostileCase) {
				c.BodyParts = []bodyPart{{Text: base}, {Text: " ", Repeat: 2*maxBody - len(base)}}
				c.Chunked = true
			})
		parts := splitParts(s.base.with(s.str, "\x00").String(), `"`, "b", 2*maxBody, `"`)
		add("oversize", "huge-string-2mib", "member "+s.str+" is 2 MiB long", nil, expectation{413, codeTooLarge, ""},
			func(c *hostileCase) { c.BodyParts = parts })
		if s.atLimit {
			add("oversize", "exactly-1mib", "exactly 1 MiB: the base body then spaces, at the limit and accepted", nil, s.baseWant,
				func(c *hostileCase) { c.BodyParts = []bodyPart{{Text: base}, {Text: " ", Repeat: maxBody - len(base)}} })
		}
		add("oversize", "lying-content-length", "a Content-Length of 5 GiB announcing a small body", str(base), expectation{413, codeTooLarge, ""},
			func(c *hostileCase) { n := int64(5 << 30); c.ContentLength = &n })
	}

	// content types.
	add("content-type", "text-plain", "Content-Type: text/plain", str(base), expectation{415, codeMedia, ""},
		func(c *hostileCase) { c.ContentType = rawq("text/plain") })
	add("content-type", "malformed", "an unparsable Content-Type", str(base), expectation{415, codeMedia, ""},
		func(c *hostileCase) { c.ContentType = rawq("application/x-amz-json-1.1;;;=") })
	add("content-type", "charset-parameter", "the JSON 1.1 type with a charset parameter is accepted", str(base), s.baseWant,
		func(c *hostileCase) { c.ContentType = rawq("application/x-amz-json-1.1; charset=utf-8") })
	add("content-type", "absent", "no Content-Type at all is accepted", str(base), s.baseWant,
		func(c *hostileCase) { c.ContentType = rawNull })

	// X-Amz-Target.
	unknown := expectation{400, codeUnknown, ""}
	add("target", "missing", "no X-Amz-Target header", str(base), unknown, func(c *hostileCase) { c.Target = rawNull })
	add("target", "lower-case", "the operation name in lower case", str(base), unknown,
		func(c *hostileCase) { c.Target = rawq(targetPrefix + strings.ToLower(s.op)) })
	add("target", "no-prefix", "the operation name without BaldrApiService.", str(base), unknown,
		func(c *hostileCase) { c.Target = rawq(s.op) })
	add("target", "v1-prefix", "the CloudHSM v1 prefix", str(base), unknown,
		func(c *hostileCase) { c.Target = rawq("CloudHsmFrontendService." + s.op) })
	add("target", "huge", "a 10,000-character target", str(base), unknown,
		func(c *hostileCase) {
			c.Target = rawq(targetPrefix + s.op + strings.Repeat("X", 10000))
			c.ExpectMessageExcludes = strings.Repeat("X", 1000)
		})

	// truncated bodies.
	add("truncated", "half", "the base body cut in half", str(base[:len(base)/2]), serErr)
	add("truncated", "open-brace", "just {", str("{"), serErr)
	add("truncated", "in-escape", `cut inside a \u escape`, str(`{"`+s.str+`":"\u00`), serErr)
	add("truncated", "two-objects", "the base body twice", str(base+base), serErr)

	// numbers and booleans.
	if s.intMember != "" {
		m := s.intMember
		add("wrong-type", strings.ToLower(m)+"-float", m+" is 1.5", str(s.base.with(m, "1.5").String()), serErr)
		add("wrong-type", strings.ToLower(m)+"-exponent-overflow", m+" is 1e400", str(s.base.with(m, "1e400").String()), serErr)
		add("wrong-type", strings.ToLower(m)+"-20-digits", m+" is 99999999999999999999", str(s.base.with(m, "99999999999999999999").String()), serErr)
		add("wrong-type", strings.ToLower(m)+"-int32-overflow", m+" is 2147483648", str(s.base.with(m, "2147483648").String()), serErr)
		add("wrong-type", strings.ToLower(m)+"-leading-zero", m+" is 010, not JSON", str(s.base.with(m, "010").String()), serErr)
		add("wrong-type", strings.ToLower(m)+"-zero", m+" is 0, under the minimum of 1", str(s.base.with(m, "0").String()), invalidErr)
		add("wrong-type", strings.ToLower(m)+"-negative", m+" is -1", str(s.base.with(m, "-1").String()), invalidErr)
	}
	if s.boolMember != "" {
		m := s.boolMember
		add("wrong-type", strings.ToLower(m)+"-capitalised", m+" is True, not JSON", str(s.base.with(m, "True").String()), serErr)
		add("wrong-type", strings.ToLower(m)+"-string", m+` is "false"`, str(s.base.with(m, q("false")).String()), serErr)
	}
	return cases
}

// splitParts renders tmpl (which holds one \x00) with the \x00 replaced by
// open + rep*n + close, as body parts.
func splitParts(tmpl, open, rep string, n int, close string) []bodyPart {
	before, after, ok := strings.Cut(tmpl, "\x00")
	if !ok {
		panic("splitParts: no marker in " + tmpl)
	}
	parts := []bodyPart{{Text: before + open}, {Text: rep, Repeat: n}, {Text: close + after}}
	return parts
}

func utf8Valid(b []byte) bool {
	return strings.ToValidUTF8(string(b), "\uFFFD") == string(b)
}

// nestParts renders tmpl (which holds one \x00) with the \x00 replaced by
// open*n + mid + close*n, as body parts.
func nestParts(tmpl, open string, n int, mid, close string) []bodyPart {
	before, after, ok := strings.Cut(tmpl, "\x00")
	if !ok {
		panic("nestParts: no marker in " + tmpl)
	}
	return []bodyPart{{Text: before}, {Text: open, Repeat: n}, {Text: mid}, {Text: close, Repeat: n}, {Text: after}}
}

// genericCases attack the protocol, not an operation.
func genericCases() []*hostileCase {
	body := strp("{}")
	mk := func(label, desc string, mod func(*hostileCase), want expectation) *hostileCase {
		c := &hostileCase{
			Name: "_protocol/" + label, Operation: "*", Category: "protocol", Description: desc,
			Target: rawq(targetPrefix + "DescribeClusters"), Body: body,
			ExpectStatus: want.status, ExpectCode: want.code,
		}
		mod(c)
		return c
	}
	return []*hostileCase{
		mk("method-get", "GET / is refused", func(c *hostileCase) { c.Method = "GET"; c.Body = nil }, expectation{405, codeMethod, ""}),
		mk("method-put", "PUT / is refused", func(c *hostileCase) { c.Method = "PUT" }, expectation{405, codeMethod, ""}),
		mk("path-other", "POST to another path", func(c *hostileCase) { c.Path = "/2017-04-28/clusters" }, expectation{400, codeUnknown, ""}),
		mk("unknown-operation", "an operation CloudHSM v2 does not have", func(c *hostileCase) {
			c.Target = rawq(targetPrefix + "DescribeHsm")
		}, expectation{400, codeUnknown, ""}),
		mk("target-prefix-only", "BaldrApiService. with no operation", func(c *hostileCase) {
			c.Target = rawq(targetPrefix)
		}, expectation{400, codeUnknown, ""}),
		mk("target-non-ascii", "a target with non-ASCII bytes", func(c *hostileCase) {
			c.Target = rawq(targetPrefix + "Describe\u00e9Clusters")
		}, expectation{400, codeUnknown, ""}),
		mk("unknown-operation-oversize", "an unknown operation with a 2 MiB body: the operation is refused first", func(c *hostileCase) {
			c.Target = rawq(targetPrefix + "Nope")
			c.Body = nil
			c.BodyParts = []bodyPart{{Text: "{}"}, {Text: " ", Repeat: 2 * maxBody}}
		}, expectation{400, codeUnknown, ""}),
	}
}
