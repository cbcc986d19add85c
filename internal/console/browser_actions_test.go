package console_test

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"crypto/x509"
	"encoding/pem"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"
	"github.com/aws/smithy-go"
	"github.com/chromedp/chromedp"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

// awsText is what an AWS client shows of a refusal: "Code: message".
func awsText(t *testing.T, err error) string {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("not an API error: %v", err)
	}
	return ae.ErrorCode() + ": " + ae.ErrorMessage()
}

func manualActivation() server.Config {
	dc := cloudhsm.DefaultConfig()
	dc.ManualActivation = true
	return server.Config{Domain: dc}
}

// TestBrowserCeremony walks the whole ceremony in the browser: create a
// cluster, add an HSM, initialize it in one click with a generated test
// CA, activate it; then initialize a second cluster by uploading a signed
// certificate and a trust anchor, as the AWS user guide does, after a
// wrong anchor is refused with the text an AWS client gets.
func TestBrowserCeremony(t *testing.T) {
	t.Parallel()
	e := newEnv(t, manualActivation())
	tb := newTab(t)
	tb.open(e.url(""))
	tb.do(chromedp.Click(chromedp.CSS("#cc-new-subnets")))
	tb.waitFor(live, `document.getElementById('cc-subnets').value.split(' ').length === 2`, "two new subnet ids")
	tb.do(chromedp.Click(chromedp.CSS("#cc-submit")))
	tb.waitFor(10*time.Second, `location.pathname.includes('/clusters/cluster-') && document.getElementById('live-status').textContent === 'live'`, "the new cluster's page")
	tb.waitFor(live, text("#cluster-state")+` === 'CREATE_IN_PROGRESS'`, "CREATE_IN_PROGRESS")
	tb.act("#advance-submit", true)
	tb.waitFor(live, text("#cluster-state")+` === 'UNINITIALIZED'`, "UNINITIALIZED")
	tb.act("#hsm-submit", true)
	tb.waitFor(live, `!!document.querySelector('#hsm-table tbody tr')`, "the HSM")
	tb.act("#advance-submit", true)
	tb.waitFor(live, `document.querySelector('#hsm-table').innerText.includes('ACTIVE') && !!document.getElementById('init-test-ca')`, "the HSM ACTIVE and the CSR to sign")
	got := tb.act("#init-test-ca", true)
	if !strings.Contains(got, "customerCA.crt") {
		t.Fatalf("notice %q", got)
	}
	href := eval[string](tb, `document.getElementById('notice-download').href`)
	anchorPEM, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(href, "data:application/x-pem-file;base64,"))
	if err != nil {
		t.Fatal(err)
	}
	tb.waitFor(live, text("#cluster-state")+` === 'INITIALIZE_IN_PROGRESS'`, "INITIALIZE_IN_PROGRESS")
	tb.act("#advance-submit", true)
	tb.waitFor(live, text("#cluster-state")+` === 'INITIALIZED' && !!document.getElementById('activate')`, "INITIALIZED, waiting for activation")
	tb.act("#activate", true)
	tb.waitFor(live, text("#cluster-state")+` === 'ACTIVE'`, "ACTIVE")
	// The cluster certificate chains to the anchor the console offered.
	id := eval[string](tb, `location.pathname.split('/').pop()`)
	d, err := e.sdk(defAcct, defRegion).DescribeClusters(bg, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"clusterIds": {id}}})
	if err != nil || len(d.Clusters) != 1 || d.Clusters[0].State != types.ClusterStateActive {
		t.Fatalf("DescribeClusters: %v", err)
	}
	verifyChain(t, *d.Clusters[0].Certificates.ClusterCertificate, string(anchorPEM))

	// The upload path, on a cluster an SDK brought to UNINITIALIZED.
	c := createCluster(t, e.sdk(defAcct, defRegion))
	e.advance(t, time.Second)
	if _, err := e.sdk(defAcct, defRegion).CreateHsm(bg, &cloudhsmv2.CreateHsmInput{ClusterId: c.ClusterId, AvailabilityZone: aws.String(firstAZ(c))}); err != nil {
		t.Fatal(err)
	}
	e.advance(t, time.Second)
	tb.open(e.url("clusters/" + *c.ClusterId))
	csr := await[string](tb, `fetch(document.getElementById('csr-download').href).then(r => r.text())`)
	ca, other := testkit.NewCA(t, "Customer Root", "Example"), testkit.NewCA(t, "Someone Else", "Other")
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	signed := ca.MustSign(t, csr)
	upload := func(name, anchor string) {
		// A file of another name each time: choosing the same file again
		// is no change to the browser.
		tb.do(chromedp.SetUploadFiles(chromedp.CSS("#init-signed-file"), []string{write(name+"-signed.crt", signed)}),
			chromedp.SetUploadFiles(chromedp.CSS("#init-anchor-file"), []string{write(name+"-anchor.crt", anchor)}))
		tb.waitFor(live, `document.getElementById('init-signed').value.includes('BEGIN CERTIFICATE') && document.getElementById('init-anchor').value === `+js(anchor), "the files in the form")
	}
	upload("wrong", other.PEM)
	refused := tb.act("#init-submit", false)
	_, err = e.sdk(defAcct, defRegion).InitializeCluster(bg, &cloudhsmv2.InitializeClusterInput{ClusterId: c.ClusterId, SignedCert: &signed, TrustAnchor: &other.PEM})
	if want := awsText(t, err); refused != want {
		t.Fatalf("the console says %q, an AWS client gets %q", refused, want)
	}
	upload("right", ca.PEM)
	tb.act("#init-submit", true)
	tb.waitFor(live, text("#cluster-state")+` === 'INITIALIZE_IN_PROGRESS'`, "the uploaded certificate accepted")

	// The console's calls went through the API: the request log has them.
	tb.open(e.url("requests?operation=InitializeCluster"))
	rows := eval[[]string](tb, `[...document.querySelectorAll('#request-table tbody tr')].map(tr => tr.innerText)`)
	console, sdk := 0, 0
	for _, row := range rows {
		if strings.Contains(row, "console") {
			console++
		} else {
			sdk++
		}
	}
	if console != 3 || sdk != 1 { // test CA, wrong anchor, upload; the SDK's refused call
		t.Fatalf("InitializeCluster calls in the request log: %d by the console, %d by the SDK:\n%s", console, sdk, strings.Join(rows, "\n"))
	}
}

const defAcct, defRegion = "123456789012", "us-east-1"

func firstAZ(c *types.Cluster) string {
	best := ""
	for az := range c.SubnetMapping {
		if best == "" || az < best {
			best = az
		}
	}
	return best
}

func verifyChain(t *testing.T, certPEM, anchorPEM string) {
	t.Helper()
	parse := func(s string) *x509.Certificate {
		b, _ := pem.Decode([]byte(s))
		if b == nil {
			t.Fatalf("not PEM: %.60q", s)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	roots := x509.NewCertPool()
	roots.AddCert(parse(anchorPEM))
	if _, err := parse(certPEM).Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("the cluster certificate does not chain to the test CA: %v", err)
	}
}

// TestBrowserActions runs each remaining action from the browser and
// checks its effect; refusals show exactly what an AWS client gets.
func TestBrowserActions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	s := makeEstate(t, e)
	a := e.sdk(acctA, "us-east-1")
	tb := newTab(t)

	// A cluster: untag, retention (refused, then set), degrade, delete an HSM.
	tb.open(e.url("clusters/" + *s.active.ClusterId))
	tb.act("#untag-0", true)
	tb.waitFor(live, `!document.getElementById('live-tags').innerText.includes('payments')`, "the tag removed")
	tb.setField("#retention-days", "5")
	refused := tb.act("#retention-submit", false)
	_, err := a.ModifyCluster(bg, &cloudhsmv2.ModifyClusterInput{ClusterId: s.active.ClusterId, BackupRetentionPolicy: &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String("5")}})
	if want := awsText(t, err); refused != want {
		t.Fatalf("the console says %q, an AWS client gets %q", refused, want)
	}
	tb.setField("#retention-days", "30")
	tb.act("#retention-submit", true)
	tb.waitFor(live, `document.getElementById('live-summary').innerText.includes('30 days')`, "the retention set")
	tb.setField("#tag-key", "k")
	tb.setField("#tag-value", untrusted)
	refused = tb.act("#tag-submit", false)
	if !strings.Contains(refused, untrusted) || eval[int](tb, `document.querySelectorAll('#notice *:not(a)').length`) != 0 {
		t.Fatalf("the refusal of markup is not shown as text: %q", refused)
	}
	tb.act("#degrade-"+s.hsmID, true)
	tb.waitFor(live, text("#cluster-state")+` === 'DEGRADED'`, "the cluster DEGRADED")

	// The estate lists the degraded HSM; heal it there.
	tb.open(e.url(""))
	tb.act("#heal-"+s.hsmID, true)
	tb.waitFor(live, `document.getElementById('live-degraded').innerText.includes('None')`, "no degraded HSM left")
	tb.open(e.url("clusters/" + *s.active.ClusterId))
	tb.waitFor(live, text("#cluster-state")+` === 'ACTIVE'`, "the cluster healed")
	tb.act("#delete-"+s.hsmID, true)
	tb.waitFor(live, `document.getElementById('hsm-table').innerText.includes('DELETE_IN_PROGRESS')`, "the HSM being deleted")
	tb.act("#advance-submit", true)
	tb.waitFor(live, `!document.getElementById('live-hsms').innerText.includes(`+js(s.hsmID)+`)`, "the HSM gone")

	// A backup: delete, restore, copy.
	tb.open(e.url("backups/" + s.backup + "?account=" + acctA + "&region=us-east-1"))
	tb.act("#delete-backup", true)
	tb.waitFor(live, text("#backup-state")+` === 'PENDING_DELETION'`, "the backup pending deletion")
	tb.act("#restore-backup", true)
	tb.waitFor(live, text("#backup-state")+` === 'READY'`, "the backup restored")
	tb.do(chromedp.SetValue(chromedp.CSS("#copy-region"), "eu-central-1"))
	tb.act("#copy-submit", true)
	tb.waitFor(live, `document.getElementById('live-lineage').innerText.includes('eu-central-1')`, "the copy in eu-central-1")

	// Faults: add one (an SDK call meets it), delete it, add two, clear all.
	tb.open(e.url(""))
	tb.do(chromedp.SetValue(chromedp.CSS("#fa-op"), "DescribeClusters"), chromedp.SetValue(chromedp.CSS("#fa-error"), "ThrottlingException"))
	tb.setField("#fa-count", "1")
	tb.act("#fa-submit", true)
	tb.waitFor(live, `document.getElementById('live-faults').innerText.includes('DescribeClusters')`, "the fault rule")
	if _, err := a.DescribeClusters(bg, &cloudhsmv2.DescribeClustersInput{}); err == nil || !strings.Contains(err.Error(), "ThrottlingException") {
		t.Fatalf("DescribeClusters with the fault in force: %v", err)
	}
	tb.waitFor(live, `document.getElementById('live-faults').innerText.includes('spent')`, "the rule spent")
	tb.act(`#live-faults button`, true)
	tb.waitFor(live, `document.getElementById('live-faults').innerText.includes('No fault rules')`, "the rule deleted")
	tb.setField("#fa-count", "")
	tb.act("#fa-submit", true)
	tb.act("#fa-submit", true)
	tb.act("#faults-clear", true)
	tb.waitFor(live, `document.getElementById('live-faults').innerText.includes('No fault rules')`, "the rules cleared")
	tb.setField("#fa-prob", "2")
	if got := tb.act("#fa-submit", false); !strings.Contains(got, "probability") {
		t.Fatalf("a bad fault rule: %q", got)
	}

	// The clock: freeze and resume.
	tb.act("#clock-resume", true)
	tb.waitFor(live, text("#clock-mode")+` === 'running'`, "the clock running")
	tb.act("#clock-freeze", true)
	tb.waitFor(live, text("#clock-mode")+` === 'frozen'`, "the clock frozen")

	// A cluster is deleted; an account is reset (only once confirmed).
	tb.open(e.url("clusters/" + *s.uninit.ClusterId))
	tb.act("#delete-cluster", true)
	tb.waitFor(live, text("#cluster-state")+` === 'DELETE_IN_PROGRESS'`, "the cluster being deleted")
	tb.open(e.url(""))
	tb.setField("#reset-account", acctA)
	if got := tb.act("#reset-submit", false); !strings.Contains(got, "confirm") {
		t.Fatalf("reset without confirming: %q", got)
	}
	tb.do(chromedp.Click(chromedp.CSS("#reset-confirm")))
	tb.act("#reset-submit", true)
	tb.waitFor(live, `!document.getElementById('live-clusters').innerText.includes(`+js(*s.active.ClusterId)+`)`, "account A's clusters gone")

	// A create the API refuses shows the API's text.
	tb.setField("#cc-subnets", "subnet-zz")
	refused = tb.act("#cc-submit", false)
	_, err = e.sdk(defAcct, defRegion).CreateCluster(bg, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: []string{"subnet-zz"}})
	if want := awsText(t, err); refused != want {
		t.Fatalf("the console says %q, an AWS client gets %q", refused, want)
	}
}
