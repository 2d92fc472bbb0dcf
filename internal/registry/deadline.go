package registry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// DefaultTimeout bounds each registry request: connecting and getting the
// first byte of the answer, and then each silence while the body streams.
// A registry that accepts connections and never answers would otherwise
// hold a build or a sweep forever (Go's and go-containerregistry's
// transports set no response deadline).
const DefaultTimeout = 30 * time.Second

// TimeoutError says that a registry went silent for longer than the
// deadline. It is deliberately not "temporary": retrying a registry that
// does not answer only multiplies the wait.
type TimeoutError struct {
	Host  string
	Stage string // "answer" (connect and first byte) or "body" (idle while streaming)
	After time.Duration
}

func (e *TimeoutError) Error() string {
	if e.Stage == "body" {
		return fmt.Sprintf("registry %s stopped sending for %s", e.Host, e.After)
	}
	return fmt.Sprintf("registry %s did not answer within %s", e.Host, e.After)
}

// Timeout makes TimeoutError a net.Error-like timeout for callers that ask.
func (e *TimeoutError) Timeout() bool { return true }

// deadlineTransport cancels a request whose answer does not start within
// timeout, and a body that stays silent for timeout. Each read that makes
// progress resets the body's timer, so large layers are not cut short.
type deadlineTransport struct {
	next    http.RoundTripper
	timeout time.Duration
}

func (d *deadlineTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	var mu sync.Mutex
	var fired *TimeoutError
	fire := func(stage string) func() {
		return func() {
			mu.Lock()
			fired = &TimeoutError{Host: req.URL.Host, Stage: stage, After: d.timeout}
			mu.Unlock()
			cancel()
		}
	}
	timer := time.AfterFunc(d.timeout, fire("answer"))
	resp, err := d.next.RoundTrip(req.WithContext(ctx))
	timer.Stop()
	mu.Lock()
	te := fired
	mu.Unlock()
	if te != nil {
		if resp != nil {
			resp.Body.Close()
		}
		cancel()
		return nil, te
	}
	if err != nil {
		cancel()
		return nil, err
	}
	body := &idleBody{rc: resp.Body, cancel: cancel, timeout: d.timeout}
	body.timer = time.AfterFunc(d.timeout, func() {
		body.mu.Lock()
		body.fired = &TimeoutError{Host: req.URL.Host, Stage: "body", After: d.timeout}
		body.mu.Unlock()
		cancel()
	})
	resp.Body = body
	return resp, nil
}

// idleBody is a response body whose reads must make progress within
// timeout.
type idleBody struct {
	rc      io.ReadCloser
	cancel  context.CancelFunc
	timeout time.Duration
	timer   *time.Timer
	mu      sync.Mutex
	fired   *TimeoutError
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.timer.Reset(b.timeout)
	}
	if err != nil && err != io.EOF {
		b.mu.Lock()
		te := b.fired
		b.mu.Unlock()
		if te != nil {
			return n, te
		}
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel()
	return err
}
