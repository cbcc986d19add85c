// Package cloudhsmlocal starts a cloudhsm-local server inside a Go test: an
// in-memory AWS CloudHSM v2 endpoint on 127.0.0.1 with its own clock, shut
// down when the test ends. Many can run in parallel in one test binary.
//
//	srv := cloudhsmlocal.Start(t)
//	client := cloudhsmv2.NewFromConfig(srv.AWSConfig())
//	... create a cluster ...
//	srv.Advance(time.Second) // CREATE_IN_PROGRESS -> UNINITIALIZED
package cloudhsmlocal

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
	"github.com/cloudhsm-local/cloudhsm-local/internal/sdkhttp"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
	"github.com/cloudhsm-local/cloudhsm-local/internal/sigv4"
)

// DefaultAccount and DefaultRegion are what AWSConfig uses unless told otherwise.
const (
	DefaultAccount = cloudhsm.DefaultAccount
	DefaultRegion  = cloudhsm.DefaultRegion
)

// Server is a running in-process cloudhsm-local.
type Server struct {
	// URL is the endpoint, e.g. http://127.0.0.1:43123.
	URL   string
	srv   *server.Server
	http  *httptest.Server
	clock *clock.Clock
}

type options struct {
	dataDir          string
	realClock        bool
	start            time.Time
	manualActivation bool
	logger           *slog.Logger
	topology         string
	deletedRetention time.Duration
	delay            time.Duration
	realistic        bool
	quotaClusters    int
	quotaHsms        int
	credentials      sigv4.StaticCredentials
	ec2              *network.EC2Config
	adminToken       string
}

// Option configures Start.
type Option func(*options)

// WithDataDir keeps state in the embedded durable store in dir instead of
// memory. The clock's state is kept there too: a server started again on dir
// comes back at the time the last one's clock had reached (frozen or
// running as it was), or at its own start time if that is later, never
// earlier.
func WithDataDir(dir string) Option { return func(o *options) { o.dataDir = dir } }

// WithRealClock makes the server's clock follow real time (it still can be advanced).
// By default the clock is frozen at the time Start was called and moves
// only with Advance.
func WithRealClock() Option { return func(o *options) { o.realClock = true } }

// WithStartTime sets the frozen clock's starting time (default: now).
// InitializeCluster checks certificates at the later of this clock and the
// real time.
func WithStartTime(t time.Time) Option { return func(o *options) { o.start = t } }

// WithManualActivation keeps INITIALIZED clusters there until Activate.
func WithManualActivation() Option { return func(o *options) { o.manualActivation = true } }

// WithLogger sends the request log to l (default: discarded).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithTopology declares VPCs and subnets from a topology file.
func WithTopology(path string) Option { return func(o *options) { o.topology = path } }

// WithDelay sets how long every in-progress state lasts (default 500ms).
func WithDelay(d time.Duration) Option { return func(o *options) { o.delay = d } }

// WithRealisticTiming makes in-progress states last about as long as on
// AWS (minutes; the binary's --profile realistic). Useful for exercising
// a poller's timeouts with Advance.
func WithRealisticTiming() Option { return func(o *options) { o.realistic = true } }

// WithDeletedRetention sets how long DELETED clusters and backups stay visible.
func WithDeletedRetention(d time.Duration) Option {
	return func(o *options) { o.deletedRetention = d }
}

// WithQuotas turns on per-region quotas of clusters and HSMs.
func WithQuotas(clusters, hsms int) Option {
	return func(o *options) { o.quotaClusters, o.quotaHsms = clusters, hsms }
}

// Credential is an access key that strict authentication accepts.
type Credential struct {
	AccessKeyID, SecretAccessKey, Account string
}

// WithStrictAuth turns on strict SigV4 authentication: only requests
// signed by one of these keys are served, and the caller's account is the
// key's. Signatures are checked against the server's clock, so combine it
// with WithRealClock or WithStartTime(time.Now()) for SDK clients.
func WithStrictAuth(creds ...Credential) Option {
	return func(o *options) {
		o.credentials = sigv4.StaticCredentials{}
		for _, c := range creds {
			o.credentials[c.AccessKeyID] = sigv4.Credential{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, Account: c.Account}
		}
	}
}

// WithEC2Endpoint looks subnets up with EC2 DescribeSubnets at endpoint (a
// moto_server or LocalStack), signing with the given credentials.
func WithEC2Endpoint(endpoint, accessKeyID, secretAccessKey string) Option {
	return func(o *options) {
		o.ec2 = &network.EC2Config{Endpoint: endpoint, AccessKeyID: accessKeyID, SecretAccessKey: secretAccessKey}
	}
}

// WithAdminToken requires a bearer token on the admin API.
func WithAdminToken(token string) Option { return func(o *options) { o.adminToken = token } }

// Start starts a server and registers its shutdown with t.Cleanup.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := New(opts...)
	if err != nil {
		t.Fatalf("cloudhsmlocal: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// New starts a server without a testing.TB; call Close when done.
func New(opts ...Option) (*Server, error) {
	o := options{start: time.Now().UTC().Truncate(time.Millisecond), logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	ck := clock.NewFrozen(o.start)
	if o.realClock {
		ck = clock.New()
	}
	dc := cloudhsm.DefaultConfig()
	if o.realistic {
		dc.Delays = cloudhsm.RealisticDelays()
	}
	if o.delay > 0 {
		dc.Delays = cloudhsm.UniformDelays(o.delay)
	}
	dc.ManualActivation = o.manualActivation
	if o.deletedRetention > 0 {
		dc.DeletedRetention = o.deletedRetention
	}
	dc.ClustersPerRegion, dc.HsmsPerRegion = o.quotaClusters, o.quotaHsms
	cfg := server.Config{
		DataDir:      o.dataDir,
		InMemory:     o.dataDir == "",
		TopologyFile: o.topology,
		Domain:       dc,
		Clock:        ck,
		Logger:       o.logger,
		EC2:          o.ec2,
		AdminToken:   o.adminToken,
	}
	if o.credentials != nil {
		cfg.Credentials = o.credentials
	}
	srv, err := server.New(cfg)
	if err != nil {
		return nil, err
	}
	hs := httptest.NewServer(srv.Handler())
	return &Server{URL: hs.URL, srv: srv, http: hs, clock: ck}, nil
}

// Handler returns the server's HTTP handler (the CloudHSM API, the admin
// API under /_cloudhsm-local/ and /metrics), for embedding it elsewhere.
func (s *Server) Handler() http.Handler { return s.srv.Handler() }

// ConsoleURL returns the address of the server's console, to open in a
// browser.
func (s *Server) ConsoleURL() string { return s.URL + server.ConsoleURL }

// ClusterURL returns the console page of a cluster: a failing test can
// print it, and a person can look at the cluster while the test waits.
func (s *Server) ClusterURL(clusterID string) string {
	return s.URL + server.ConsoleURL + "clusters/" + url.PathEscape(clusterID)
}

// BackupURL returns the console page of a backup.
func (s *Server) BackupURL(backupID string) string {
	return s.URL + server.ConsoleURL + "backups/" + url.PathEscape(backupID)
}

// Close stops the server and closes its store.
func (s *Server) Close() {
	s.http.Close()
	_ = s.srv.Close()
}

// AWSConfig returns an aws.Config for aws-sdk-go-v2 that talks to this
// server as DefaultAccount in DefaultRegion.
func (s *Server) AWSConfig() aws.Config { return s.AWSConfigFor(DefaultAccount, DefaultRegion) }

// AWSConfigFor returns an aws.Config for the given account (a 12-digit id,
// used as the access key id) and region.
func (s *Server) AWSConfigFor(account, region string) aws.Config {
	return aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(account, "cloudhsm-local-secret", ""),
		BaseEndpoint: aws.String(s.URL),
		HTTPClient:   sdkhttp.PrivateBodies{Client: s.http.Client()}, // see its doc: a client-side race
		Logger:       nil,
	}
}

// Now returns the server clock's time.
func (s *Server) Now() time.Time { return s.clock.Now() }

// Advance moves the server's clock forward by d and applies every
// transition, scheduled backup and expiry that falls due.
func (s *Server) Advance(d time.Duration) {
	if _, err := s.srv.Service().AdvanceClock(d); err != nil {
		panic("cloudhsmlocal: advance: " + err.Error())
	}
}

// Activate moves an INITIALIZED cluster to ACTIVE, as `cluster activate`
// does on a real HSM. Needed only with WithManualActivation.
func (s *Server) Activate(account, region, clusterID string) error {
	_, err := s.srv.Service().Activate(cloudhsm.Tenant{Account: account, Region: region}, clusterID)
	return err
}

// ManufacturerRootPEM and AWSRootPEM are the simulated roots that HSM
// certificates chain to.
func (s *Server) ManufacturerRootPEM() string {
	a, err := s.srv.Service().Authority()
	if err != nil {
		panic("cloudhsmlocal: simulated roots: " + err.Error())
	}
	return a.ManufacturerRootPEM()
}

// AWSRootPEM is the simulated AWS CloudHSM root certificate.
func (s *Server) AWSRootPEM() string {
	a, err := s.srv.Service().Authority()
	if err != nil {
		panic("cloudhsmlocal: simulated roots: " + err.Error())
	}
	return a.AWSRootPEM()
}
