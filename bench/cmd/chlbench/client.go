package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Region and the fixed request date used by every call (as describe.lua).
const (
	region  = "us-east-1"
	amzDate = "20261126T000000Z"
)

// client sends AWS JSON 1.1 requests with the same headers as
// shared/bench/describe.lua: a SigV4-shaped Authorization header whose
// credential scope names the account (a 12-digit access key id) and region.
// The signature is not valid; the server's default mode does not check it.
//
// send, the hot path of the load loops, goes over wireConns; the other
// calls use net/http.
type client struct {
	url  string
	host string
	hc   *http.Client
	idle chan *wireConn
}

// newClient returns a client with a keep-alive pool of up to conns
// connections to url.
func newClient(url string, conns int) *client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns + 16,
		MaxIdleConnsPerHost: conns + 16,
		MaxConnsPerHost:     0,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &client{
		url:  url + "/",
		host: strings.TrimPrefix(url, "http://"),
		hc:   &http.Client{Transport: tr, Timeout: 60 * time.Second},
		idle: make(chan *wireConn, conns+16),
	}
}

func (c *client) close() {
	c.hc.CloseIdleConnections()
	for {
		select {
		case w := <-c.idle:
			w.close()
		default:
			return
		}
	}
}

func authorization(account string) string {
	return "AWS4-HMAC-SHA256 Credential=" + account + "/20261126/" + region +
		"/cloudhsm/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0000000000000000000000000000000000000000000000000000000000000000"
}

// request is a prepared call that can be sent many times.
type request struct {
	op      string
	body    []byte
	headers http.Header
}

func newRequest(account, op string, body []byte) *request {
	h := http.Header{}
	h["Content-Type"] = []string{"application/x-amz-json-1.1"}
	h["X-Amz-Target"] = []string{"BaldrApiService." + op}
	h["X-Amz-Date"] = []string{amzDate}
	h["Authorization"] = []string{authorization(account)}
	return &request{op: op, body: body, headers: h}
}

// apiError is a non-200 answer.
type apiError struct {
	op     string
	status int
	body   string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s: HTTP %d: %s", e.op, e.status, e.body)
}

// send sends r on an idle wireConn (or a new one) and discards the body;
// it returns an error for anything but 200.
func (c *client) send(ctx context.Context, r *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var w *wireConn
	select {
	case w = <-c.idle:
	default:
		var err error
		if w, err = dialWire(c.host); err != nil {
			return err
		}
	}
	status, head, err := w.roundTrip(c.host, r)
	if err != nil {
		w.close()
		return fmt.Errorf("%s: %w", r.op, err)
	}
	select {
	case c.idle <- w:
	default:
		w.close()
	}
	if status != http.StatusOK {
		return &apiError{op: r.op, status: status, body: string(head)}
	}
	return nil
}

// do sends r and returns the body when keep is set.
func (c *client) do(ctx context.Context, r *request, keep bool) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(r.body))
	if err != nil {
		return nil, err
	}
	req.Header = r.headers.Clone()
	req.ContentLength = int64(len(r.body))
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || keep {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			if len(b) > 300 {
				b = b[:300]
			}
			return nil, &apiError{op: r.op, status: resp.StatusCode, body: string(b)}
		}
		return b, nil
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return nil, err
}

// call sends op with in (marshalled to JSON) and decodes the answer into out
// (when not nil).
func (c *client) call(ctx context.Context, account, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	b, err := c.do(ctx, newRequest(account, op, body), true)
	if err != nil {
		return err
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s: decode answer: %w", op, err)
		}
	}
	return nil
}

// post sends a plain JSON POST (for the admin API) and returns the status.
func (c *client) post(ctx context.Context, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// ---- shapes ----

type tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type createClusterIn struct {
	HsmType   string   `json:"HsmType"`
	SubnetIds []string `json:"SubnetIds"`
	TagList   []tag    `json:"TagList,omitempty"`
}

type clusterOut struct {
	ClusterId     string            `json:"ClusterId"`
	State         string            `json:"State"`
	SubnetMapping map[string]string `json:"SubnetMapping"`
}

type createClusterOut struct {
	Cluster clusterOut `json:"Cluster"`
}

type describeClustersIn struct {
	Filters    map[string][]string `json:"Filters,omitempty"`
	MaxResults int                 `json:"MaxResults,omitempty"`
	NextToken  string              `json:"NextToken,omitempty"`
}

type describeClustersOut struct {
	Clusters  []clusterOut `json:"Clusters"`
	NextToken string       `json:"NextToken"`
}

type describeBackupsIn struct {
	MaxResults int    `json:"MaxResults,omitempty"`
	NextToken  string `json:"NextToken,omitempty"`
}

type describeBackupsOut struct {
	Backups []struct {
		BackupId string `json:"BackupId"`
	} `json:"Backups"`
	NextToken string `json:"NextToken"`
}

type listTagsIn struct {
	ResourceId string `json:"ResourceId"`
	MaxResults int    `json:"MaxResults,omitempty"`
	NextToken  string `json:"NextToken,omitempty"`
}

type listTagsOut struct {
	TagList   []tag  `json:"TagList"`
	NextToken string `json:"NextToken"`
}
