package registry

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// pingCache answers go-containerregistry's "GET /v2/" pings from memory
// after the first answer per scheme and host. ggcr pings before every
// operation to learn the auth challenge; within one cipack run that answer
// does not change, and a sweep of hundreds of images would otherwise spend
// one request per image on it. Concurrent first pings wait for one answer.
type pingCache struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen map[string]*cachedPing
}

type cachedPing struct {
	done   chan struct{}
	ok     bool // an answer worth reusing arrived
	status int
	header http.Header
	body   []byte
	err    error
}

func newPingCache(next http.RoundTripper) *pingCache {
	return &pingCache{next: next, seen: map[string]*cachedPing{}}
}

func (p *pingCache) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || req.URL.Path != "/v2/" || req.Header.Get("Authorization") != "" {
		return p.next.RoundTrip(req)
	}
	key := req.URL.Scheme + "://" + req.URL.Host
	p.mu.Lock()
	c, ok := p.seen[key]
	if !ok {
		c = &cachedPing{done: make(chan struct{})}
		p.seen[key] = c
	}
	p.mu.Unlock()
	if !ok {
		p.fill(key, c, req)
	} else {
		select {
		case <-c.done:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
		if !c.ok {
			return p.next.RoundTrip(req) // the first try was not reusable
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	return &http.Response{
		Status: http.StatusText(c.status), StatusCode: c.status, Header: c.header.Clone(),
		Body: io.NopCloser(bytes.NewReader(c.body)), ContentLength: int64(len(c.body)),
		Request: req, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}, nil
}

// fill makes the real request and publishes its answer. A network error
// is kept too (an https try against a plain-HTTP registry fails the same
// way every time) unless the request's own context ended it.
func (p *pingCache) fill(key string, c *cachedPing, req *http.Request) {
	defer close(c.done)
	resp, err := p.ping(req)
	if err != nil {
		c.err, c.ok = err, req.Context().Err() == nil
		if !c.ok {
			p.forget(key)
		}
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64*1024))
	if err != nil {
		c.err = err
		p.forget(key)
		return
	}
	c.status, c.header, c.body = resp.StatusCode, resp.Header.Clone(), body
	c.ok = resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized
	if !c.ok {
		p.forget(key)
	}
}

func (p *pingCache) forget(key string) {
	p.mu.Lock()
	delete(p.seen, key)
	p.mu.Unlock()
}

// ping is the real request, retried on a transient status (503, 429, …)
// as go-containerregistry retries its other requests: its own ping is not
// retried, so one 503 from a registry's front end would fail a whole
// build with a misleading hint about plain-HTTP registries.
func (p *pingCache) ping(req *http.Request) (*http.Response, error) {
	wait := retryBackoff.Duration
	for attempt := 1; ; attempt++ {
		resp, err := p.next.RoundTrip(req)
		if err != nil || attempt == retryBackoff.Steps || !slices.Contains(pushCheckRetryCodes, resp.StatusCode) {
			return resp, err
		}
		resp.Body.Close()
		select {
		case <-req.Context().Done():
			return nil, req.Context().Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}
