package rebase

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/cipack/cipack/internal/config"
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
}

// Triggerer starts an app's own rebuild.
type Triggerer interface {
	Trigger(ctx context.Context, t config.Trigger, p Payload) error
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

// NewWebhook returns a webhook trigger with production settings.
func NewWebhook(getenv func(string) string) *Webhook {
	return &Webhook{Client: http.DefaultClient, Getenv: getenv, Attempts: 3, Backoff: 500 * time.Millisecond, Timeout: 10 * time.Second}
}

func (w *Webhook) Trigger(ctx context.Context, t config.Trigger, p Payload) error {
	if t.Webhook == nil {
		return fmt.Errorf("no webhook configured")
	}
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
	if t.Webhook.TokenEnv != "" {
		if token = w.Getenv(t.Webhook.TokenEnv); token == "" {
			return fmt.Errorf("webhook token variable %s is empty: set it in the job's environment", t.Webhook.TokenEnv)
		}
	}
	backoff := w.Backoff
	var last error
	for attempt := 1; attempt <= w.Attempts; attempt++ {
		retry, err := w.post(ctx, t.Webhook.URL, token, data)
		if err == nil {
			return nil
		}
		last = err
		if !retry || attempt == w.Attempts {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff *= 2
	}
	return fmt.Errorf("POST %s: %w", t.Webhook.URL, last)
}

func (w *Webhook) post(ctx context.Context, url, token string, data []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "cipack")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := w.Client.Do(req)
	if err != nil {
		return true, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64*1024))
	switch {
	case resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, fmt.Errorf("status %d", resp.StatusCode)
	default:
		return false, fmt.Errorf("status %d (check the URL and the token)", resp.StatusCode)
	}
}
