package terraform

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

// allScenarios lists the scenarios, each a directory of scenarios/.
func allScenarios() []scenario {
	return []scenario{
		{dir: "cluster-hsm", steps: clusterHSM,
			proof: "an hsm1.medium cluster (mode FIPS), its first HSM and the cluster data source: ids, VPC, security group, ENI, IP, zone, the CSR as a valid PKCS #10 request, all equal to DescribeClusters"},
		{dir: "modes", steps: modes,
			proof: "hsm2m.medium clusters with `mode = \"FIPS\"` and `mode = \"NON_FIPS\"`, read back by DescribeClusters"},
		{dir: "tags", steps: tagsInPlace,
			proof: "changed tags are an in-place update (not a replacement), applied through TagResource and UntagResource, and ListTags shows them"},
		{dir: "import", steps: importOutside,
			proof: "`terraform import` of a cluster created with aws-sdk-go-v2, then a plan with nothing to change; a tag removed outside Terraform is then planned as an in-place update (drift is seen)"},
	}
}

// apply applies the configuration and checks that a plan then finds no
// drift.
func (w *workspace) apply(args ...string) {
	w.t.Helper()
	w.terraform(0, append([]string{"apply", "-auto-approve", "-input=false"}, args...)...)
	w.noDrift(args...)
}

// ---- cluster-hsm ----

const hsmSubnet = "subnet-0c1a5e0000000000a" // scenarios/cluster-hsm/main.tf

func clusterHSM(t *testing.T, w *workspace) {
	w.apply()
	out := w.outputs()
	c := w.cluster(str(t, out, "cluster_id"))
	if c.State != types.ClusterStateUninitialized || c.HsmType == nil || *c.HsmType != "hsm1.medium" || len(c.Hsms) != 1 {
		t.Fatalf("DescribeClusters: cluster %s is %s, %s, with %d HSMs; want UNINITIALIZED hsm1.medium with 1",
			aws.ToString(c.ClusterId), c.State, aws.ToString(c.HsmType), len(c.Hsms))
	}
	h := c.Hsms[0]
	expect(t, out, map[string]string{
		"mode":                   string(c.Mode),
		"vpc_id":                 aws.ToString(c.VpcId),
		"security_group_id":      aws.ToString(c.SecurityGroup),
		"hsm_id":                 aws.ToString(h.HsmId),
		"hsm_state":              string(h.State),
		"hsm_eni_id":             aws.ToString(h.EniId),
		"hsm_ip_address":         aws.ToString(h.EniIp),
		"hsm_availability_zone":  aws.ToString(h.AvailabilityZone),
		"hsm_subnet_id":          aws.ToString(h.SubnetId),
		"data_cluster_state":     string(c.State),
		"data_vpc_id":            aws.ToString(c.VpcId),
		"data_security_group_id": aws.ToString(c.SecurityGroup),
	})
	// What the service answers is checked against what it should be, not
	// only against what Terraform shows.
	for name, want := range map[string]string{"mode": "FIPS", "hsm_state": "ACTIVE", "hsm_subnet_id": hsmSubnet, "data_cluster_state": "UNINITIALIZED"} {
		if got, _ := out[name].(string); got != want {
			t.Errorf("output %s = %q, want %q", name, got, want)
		}
	}
	for name, prefix := range map[string]string{"vpc_id": "vpc-", "security_group_id": "sg-", "hsm_id": "hsm-", "hsm_eni_id": "eni-"} {
		if got, _ := out[name].(string); !strings.HasPrefix(got, prefix) {
			t.Errorf("output %s = %q, want an id starting %q", name, got, prefix)
		}
	}
	if az := aws.ToString(h.AvailabilityZone); c.SubnetMapping[az] != hsmSubnet {
		t.Errorf("the HSM is in zone %q, whose subnet is %q; want the zone of %s (SubnetMapping %v)", az, c.SubnetMapping[az], hsmSubnet, c.SubnetMapping)
	}
	if got, want := strList(t, out, "data_subnet_ids"), slices.Sorted(maps.Values(c.SubnetMapping)); !slices.Equal(got, want) {
		t.Errorf("data source subnet_ids = %v, want %v", got, want)
	}
	checkCSR(t, str(t, out, "data_cluster_csr"), c.Certificates)
}

// checkCSR checks the data source's cluster CSR: DescribeClusters' own,
// a PKCS #10 request whose signature verifies.
func checkCSR(t *testing.T, got string, certs *types.Certificates) {
	t.Helper()
	if certs == nil || aws.ToString(certs.ClusterCsr) == "" {
		t.Fatalf("DescribeClusters shows no ClusterCsr for an UNINITIALIZED cluster with an HSM")
	}
	if got != aws.ToString(certs.ClusterCsr) {
		t.Errorf("data source cluster_csr differs from DescribeClusters' ClusterCsr:\n%s\nvs\n%s", got, aws.ToString(certs.ClusterCsr))
	}
	block, _ := pem.Decode([]byte(got))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("cluster_csr is not a PEM CERTIFICATE REQUEST: %q", testkit.Tail(got, 200))
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatalf("cluster_csr: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Errorf("cluster_csr signature: %v", err)
	}
}

// ---- modes ----

func modes(t *testing.T, w *workspace) {
	w.apply()
	out := w.outputs()
	for _, m := range []struct{ prefix, want string }{{"fips", "FIPS"}, {"non_fips", "NON_FIPS"}} {
		c := w.cluster(str(t, out, m.prefix+"_cluster_id"))
		if string(c.Mode) != m.want || aws.ToString(c.HsmType) != "hsm2m.medium" {
			t.Errorf("DescribeClusters: cluster %s is %s in mode %q, want hsm2m.medium in %s", aws.ToString(c.ClusterId), aws.ToString(c.HsmType), c.Mode, m.want)
		}
		if got := str(t, out, m.prefix+"_mode"); got != m.want {
			t.Errorf("output %s_mode = %q, want %q", m.prefix, got, m.want)
		}
	}
}

// ---- tags ----

// The tags of scenarios/tags: main.tf's default, then step2.tfvars'.
var (
	tagsBefore = map[string]string{"Name": "terraform-tags", "env": "dev", "team": "platform"}
	tagsAfter  = map[string]string{"Name": "terraform-tags-renamed", "team": "platform", "owner": "sre"}
)

func tagsInPlace(t *testing.T, w *workspace) {
	w.apply()
	id := str(t, w.outputs(), "cluster_id")
	w.expectTags(id, tagsBefore)

	out, code, err := w.run("plan", "-input=false", "-detailed-exitcode", "-json", "-var-file=step2.tfvars", "-out=step2.tfplan")
	if err != nil || code != 2 {
		t.Fatalf("terraform plan -var-file=step2.tfvars: exit code %d (%v), want 2 (changes):\n%s", code, err, testkit.Tail(out, 8000))
	}
	actions, summary := plannedChanges(t, out)
	if want := map[string]string{"aws_cloudhsm_v2_cluster.this": "update"}; !maps.Equal(actions, want) {
		t.Errorf("planned changes %v, want %v (tags change in place)", actions, want)
	}
	if summary != "0 to add, 1 to change, 0 to destroy" {
		t.Errorf("plan summary %q, want 0 to add, 1 to change, 0 to destroy", summary)
	}
	w.terraform(0, "apply", "-input=false", "step2.tfplan")
	w.noDrift("-var-file=step2.tfvars")
	out2 := w.outputs()
	if got := str(t, out2, "cluster_id"); got != id {
		t.Errorf("after the tag change the cluster is %s, want %s (the same, not a replacement)", got, id)
	}
	w.expectTags(id, tagsAfter)
	if got := strMap(t, out2, "tags_all"); !maps.Equal(got, tagsAfter) {
		t.Errorf("output tags_all = %v, want %v", got, tagsAfter)
	}
}

// plannedChanges reads `terraform plan -json`: the action of each planned
// change by resource address, and the change summary.
func plannedChanges(t *testing.T, out string) (map[string]string, string) {
	t.Helper()
	actions := map[string]string{}
	summary := ""
	for _, line := range strings.Split(out, "\n") {
		var msg struct {
			Type   string `json:"type"`
			Change struct {
				Resource struct {
					Addr string `json:"addr"`
				} `json:"resource"`
				Action string `json:"action"`
			} `json:"change"`
			Changes struct {
				Add, Change, Remove int
			} `json:"changes"`
		}
		if json.Unmarshal([]byte(line), &msg) != nil {
			continue
		}
		switch msg.Type {
		case "planned_change":
			actions[msg.Change.Resource.Addr] = msg.Change.Action
		case "change_summary":
			c := msg.Changes
			summary = fmt.Sprintf("%d to add, %d to change, %d to destroy", c.Add, c.Change, c.Remove)
		}
	}
	if summary == "" {
		t.Fatalf("terraform plan -json printed no change_summary:\n%s", testkit.Tail(out, 4000))
	}
	return actions, summary
}

// expectTags checks the cluster's tags through ListTags.
func (w *workspace) expectTags(id string, want map[string]string) {
	w.t.Helper()
	got := map[string]string{}
	p := cloudhsmv2.NewListTagsPaginator(w.sdk, &cloudhsmv2.ListTagsInput{ResourceId: aws.String(id)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			w.t.Fatalf("ListTags %s: %v", id, err)
		}
		for _, tag := range page.TagList {
			got[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
		}
	}
	if !maps.Equal(got, want) {
		w.t.Errorf("ListTags %s = %v, want %v", id, got, want)
	}
}

// ---- import ----

// createOutside creates, with aws-sdk-go-v2, the cluster that
// scenarios/import/main.tf describes, and lets the server's clock pass its
// creation.
func (w *workspace) createOutside() string {
	w.t.Helper()
	ctx := context.Background()
	out, err := w.sdk.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{
		HsmType:   aws.String("hsm2m.medium"),
		SubnetIds: []string{"subnet-01a90000000000000", "subnet-01a90000000000001"},
		TagList: []types.Tag{
			{Key: aws.String("Name"), Value: aws.String("created-outside-terraform")},
			{Key: aws.String("ManagedBy"), Value: aws.String("aws-sdk-go-v2")},
		},
	})
	if err != nil {
		w.t.Fatalf("CreateCluster: %v", err)
	}
	id := aws.ToString(out.Cluster.ClusterId)
	if _, err := w.admin.Advance(ctx, time.Minute); err != nil {
		w.t.Fatalf("admin clock advance: %v", err)
	}
	if c := w.cluster(id); c.State != types.ClusterStateUninitialized {
		w.t.Fatalf("cluster %s is %s a minute after CreateCluster, want UNINITIALIZED", id, c.State)
	}
	return id
}

func importOutside(t *testing.T, w *workspace) {
	id := w.createOutside()
	w.terraform(0, "import", "-input=false", "aws_cloudhsm_v2_cluster.imported", id)
	w.noDrift()
	out := w.outputs()
	if got := str(t, out, "cluster_id"); got != id {
		t.Errorf("output cluster_id = %q, want the imported %s", got, id)
	}
	if got, want := str(t, out, "mode"), string(w.cluster(id).Mode); got != want || got == "" {
		t.Errorf("output mode = %q, DescribeClusters says %q", got, want)
	}

	// A change made outside Terraform is drift: the plan reads the server,
	// not only its state, so the no-drift checks of the suite can fail.
	if _, err := w.sdk.UntagResource(context.Background(), &cloudhsmv2.UntagResourceInput{
		ResourceId: aws.String(id), TagKeyList: []string{"ManagedBy"},
	}); err != nil {
		t.Fatalf("UntagResource: %v", err)
	}
	plan, code, err := w.run("plan", "-input=false", "-detailed-exitcode", "-json")
	if err != nil || code != 2 {
		t.Fatalf("terraform plan after UntagResource outside Terraform: exit code %d (%v), want 2 (drift):\n%s", code, err, testkit.Tail(plan, 8000))
	}
	if actions, _ := plannedChanges(t, plan); !maps.Equal(actions, map[string]string{"aws_cloudhsm_v2_cluster.imported": "update"}) {
		t.Errorf("planned changes after UntagResource outside Terraform: %v, want the imported cluster updated (its tag put back)", actions)
	}
}

// ---- outputs ----

func str(t *testing.T, out map[string]any, name string) string {
	t.Helper()
	s, ok := out[name].(string)
	if !ok || s == "" {
		t.Fatalf("output %s = %#v, want a non-empty string", name, out[name])
	}
	return s
}

func strList(t *testing.T, out map[string]any, name string) []string {
	t.Helper()
	l, ok := out[name].([]any)
	if !ok {
		t.Fatalf("output %s = %#v, want a list", name, out[name])
	}
	var s []string
	for _, v := range l {
		s = append(s, v.(string))
	}
	slices.Sort(s)
	return s
}

func strMap(t *testing.T, out map[string]any, name string) map[string]string {
	t.Helper()
	m, ok := out[name].(map[string]any)
	if !ok {
		t.Fatalf("output %s = %#v, want a map", name, out[name])
	}
	s := map[string]string{}
	for k, v := range m {
		s[k], _ = v.(string)
	}
	return s
}

// expect compares outputs with what DescribeClusters answered.
func expect(t *testing.T, out map[string]any, want map[string]string) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(want)) {
		got, _ := out[name].(string)
		if got != want[name] || got == "" {
			t.Errorf("output %s = %q, DescribeClusters says %q", name, got, want[name])
		}
	}
}
