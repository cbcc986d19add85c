package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/faults"
)

// Client calls the admin API of a running server.
type Client struct {
	// Endpoint is the server's base URL, e.g. http://127.0.0.1:4599.
	Endpoint string
	// Token is sent as a bearer token when set.
	Token string
	// HTTP is the client to use (default: one with a 30s timeout).
	HTTP *http.Client
}

// StatusError is an admin API error answer.
type StatusError struct {
	Status  int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("admin API: %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

var defaultHTTP = &http.Client{Timeout: 30 * time.Second}

// Raw sends one request and returns the body of a 2xx answer; other
// answers are a *StatusError. body, when not nil and not an io.Reader, is
// encoded as JSON.
func (c *Client) Raw(ctx context.Context, method, path string, query url.Values, body any) ([]byte, error) {
	u := strings.TrimRight(c.Endpoint, "/") + Prefix + strings.TrimPrefix(path, "/")
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd = b
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		var eb ErrorBody
		msg := strings.TrimSpace(string(out))
		if json.Unmarshal(out, &eb) == nil && eb.Error != "" {
			msg = eb.Error
		}
		return nil, &StatusError{Status: resp.StatusCode, Message: msg}
	}
	return out, nil
}

// Do is Raw, decoding the answer into out (when not nil).
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	b, err := c.Raw(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("admin API: decode answer of %s %s: %w", method, path, err)
	}
	return nil
}

func tenancyQuery(account, region string) url.Values {
	q := url.Values{}
	if account != "" {
		q.Set("account", account)
	}
	if region != "" {
		q.Set("region", region)
	}
	return q
}

// Health calls GET health.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	err := c.Do(ctx, http.MethodGet, "health", nil, nil, &h)
	return h, err
}

// Reset calls POST reset (every account when account is empty).
func (c *Client) Reset(ctx context.Context, account string) (ResetResult, error) {
	var out ResetResult
	err := c.Do(ctx, http.MethodPost, "reset", tenancyQuery(account, ""), nil, &out)
	return out, err
}

// Export calls GET export and returns the snapshot document as sent.
func (c *Client) Export(ctx context.Context) ([]byte, error) {
	return c.Raw(ctx, http.MethodGet, "export", nil, nil)
}

// Import calls POST import with a snapshot document.
func (c *Client) Import(ctx context.Context, snapshot io.Reader) (ImportResult, error) {
	var out ImportResult
	err := c.Do(ctx, http.MethodPost, "import", nil, snapshot, &out)
	return out, err
}

// Clock calls GET clock.
func (c *Client) Clock(ctx context.Context) (ClockState, error) {
	var out ClockState
	err := c.Do(ctx, http.MethodGet, "clock", nil, nil, &out)
	return out, err
}

// Advance calls POST clock/advance.
func (c *Client) Advance(ctx context.Context, d time.Duration) (ClockState, error) {
	var out ClockState
	err := c.Do(ctx, http.MethodPost, "clock/advance", nil, map[string]string{"duration": d.String()}, &out)
	return out, err
}

// Freeze calls POST clock/freeze.
func (c *Client) Freeze(ctx context.Context) (ClockState, error) {
	var out ClockState
	err := c.Do(ctx, http.MethodPost, "clock/freeze", nil, nil, &out)
	return out, err
}

// Resume calls POST clock/resume.
func (c *Client) Resume(ctx context.Context) (ClockState, error) {
	var out ClockState
	err := c.Do(ctx, http.MethodPost, "clock/resume", nil, nil, &out)
	return out, err
}

// RealTime calls POST clock/real-time.
func (c *Client) RealTime(ctx context.Context) (ClockState, error) {
	var out ClockState
	err := c.Do(ctx, http.MethodPost, "clock/real-time", nil, nil, &out)
	return out, err
}

// Activate calls POST clusters/{id}/activate.
func (c *Client) Activate(ctx context.Context, clusterID, account, region string) (ClusterSummary, error) {
	var out ClusterSummary
	err := c.Do(ctx, http.MethodPost, "clusters/"+url.PathEscape(clusterID)+"/activate", tenancyQuery(account, region), nil, &out)
	return out, err
}

// Degrade calls POST hsms/degrade.
func (c *Client) Degrade(ctx context.Context, t HsmTarget) (ClusterSummary, error) {
	var out ClusterSummary
	err := c.Do(ctx, http.MethodPost, "hsms/degrade", nil, t, &out)
	return out, err
}

// Heal calls POST hsms/heal.
func (c *Client) Heal(ctx context.Context, t HsmTarget) (ClusterSummary, error) {
	var out ClusterSummary
	err := c.Do(ctx, http.MethodPost, "hsms/heal", nil, t, &out)
	return out, err
}

// Faults calls GET faults.
func (c *Client) Faults(ctx context.Context) ([]faults.Rule, error) {
	var out FaultList
	err := c.Do(ctx, http.MethodGet, "faults", nil, nil, &out)
	return out.Rules, err
}

// AddFault calls POST faults.
func (c *Client) AddFault(ctx context.Context, r FaultRule) (faults.Rule, error) {
	var out faults.Rule
	err := c.Do(ctx, http.MethodPost, "faults", nil, r, &out)
	return out, err
}

// ClearFaults calls DELETE faults.
func (c *Client) ClearFaults(ctx context.Context) (int, error) {
	var out Deleted
	err := c.Do(ctx, http.MethodDelete, "faults", nil, nil, &out)
	return out.Deleted, err
}

// DeleteFault calls DELETE faults/{id}.
func (c *Client) DeleteFault(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "faults/"+url.PathEscape(id), nil, nil, nil)
}
