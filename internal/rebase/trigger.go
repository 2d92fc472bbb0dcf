package rebase

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cipack/cipack/internal/redact"
)

// Payload is what a rebuild trigger receives.
type Payload struct {
	Image    string `json:"image"`
	Digest   string `json:"digest"`
	Verdict  string `json:"verdict"`
	Reason   string `json:"reason"`
	Detail   string `json:"detail,omitempty"`
	Builder  string `json:"builder,omitempty"`
	RunImage string `json:"runImage,omitempty"`
	// IdempotencyKey is the same for every request about one image at one
	// digest — retries after a network error that may have delivered, and
	// later sweeps that find it still stale — so a receiver can drop
	// duplicates. Also sent as the Idempotency-Key header.
	IdempotencyKey string `json:"idempotencyKey"`
}

// IdempotencyKey is the key for a rebuild of image from digest.
func IdempotencyKey(image, digest string) string {
	sum := sha256.Sum256([]byte(image + "\x00" + digest))
	return "cipack-" + hex.EncodeToString(sum[:16])
}

// Triggerer starts an app's own rebuild.
type Triggerer interface {
	Trigger(ctx context.Context, t Trigger, p Payload) error
}

// Webhook POSTs the payload as JSON, with a bearer token when the fleet
// names the variable that holds one. Retries are bounded: Attempts tries,
// Backoff doubling between them, Timeout per try.
type Webhook struct {
	Client   *http.Client
	Getenv   func(string) string
	Attempts int
	Backoff  time.Duration
	Timeout  time.Duration
}

// NewWebhook returns a webhook trigger with production settings. Its
// client never follows a redirect: the request carries a bearer token, and
// a redirect could send it to another origin or over plain http (and would
// turn the POST into a GET that "succeeds" without triggering anything).
func NewWebhook(getenv func(string) string) *Webhook {
	return &Webhook{Client: NoRedirectClient(), Getenv: getenv, Attempts: 3, Backoff: 500 * time.Millisecond, Timeout: 10 * time.Second}
}

// NoRedirectClient is an HTTP client that hands a 3xx back to the caller.
func NoRedirectClient() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// maxRetryAfter caps how long a receiver's Retry-After can hold a sweep.
const maxRetryAfter = 30 * time.Second

func (w *Webhook) Trigger(ctx context.Context, t Trigger, p Payload) error {
	if t.Webhook == nil {
		return fmt.Errorf("no webhook configured")
	}
	p.IdempotencyKey = IdempotencyKey(p.Image, p.Digest)
	var body any = p
	if t.Webhook.EventType != "" {
		// GitHub's repository_dispatch shape.
		body = map[string]any{"event_type": t.Webhook.EventType, "client_payload": p}
	}
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	token := ""
	if redact.IsCredentialVar(t.Webhook.TokenEnv) {
		return fmt.Errorf("tokenEnv %s names cipack's own credentials: refusing to send them to a webhook", t.Webhook.TokenEnv)
	}
	if t.Webhook.TokenEnv != "" {
		if token = w.Getenv(t.Webhook.TokenEnv); token == "" {
			if redact.LooksLikeToken(t.Webhook.TokenEnv) {
				return fmt.Errorf("the webhook's tokenEnv names an empty variable (its name looks like a token and is not shown): put the variable's name in the fleet file")
			}
			return fmt.Errorf("webhook token variable %s is empty: set it in the job's environment", t.Webhook.TokenEnv)
		}
	}
	backoff := w.Backoff
	var last error
	for attempt := 1; attempt <= w.Attempts; attempt++ {
		retry, after, err := w.post(ctx, t.Webhook.URL, token, p.IdempotencyKey, data)
		if err == nil {
			return nil
		}
		last = err
		if !retry || attempt == w.Attempts {
			break
		}
		wait := backoff
		if after > 0 {
			wait = min(after, maxRetryAfter)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		backoff *= 2
	}
	return fmt.Errorf("POST %s: %w", redact.URL(t.Webhook.URL), last)
}

func (w *Webhook) post(ctx context.Context, url, token, key string, data []byte) (retry bool, after time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		return false, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "cipack")
	req.Header.Set("Idempotency-Key", key)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := w.Client.Do(req)
	if err != nil {
		// url.Error repeats the URL: keep only the cause.
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return true, 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64*1024))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, 0, nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return false, 0, fmt.Errorf("status %d: the receiver redirects (to %s), and cipack does not follow redirects with a token: put the final URL in the fleet file",
			resp.StatusCode, redact.URL(resp.Header.Get("Location")))
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, retryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("status %d", resp.StatusCode)
	default:
		return false, 0, fmt.Errorf("status %d (check the URL and the token)", resp.StatusCode)
	}
}

// retryAfter reads a Retry-After header given in seconds (the form
// receivers use for 429/503); anything else means "use the backoff".
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}
