package registry

import (
	"bytes"
	"io"
	"net/http"
	"sync"
)

// pingCache answers go-containerregistry's "GET /v2/" pings from memory
// after the first answer per scheme and host. ggcr pings before every
// operation to learn the auth challenge; within one cipack run that answer
// does not change, and a sweep of hundreds of images would otherwise spend
// one request per image on it.
type pingCache struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen map[string]*cachedPing
}

type cachedPing struct {
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
	p.mu.Unlock()
	if !ok {
		resp, err := p.next.RoundTrip(req)
		if err != nil {
			// A failed https attempt on a plain-HTTP registry fails the
			// same way every time: remember it too, unless it was ours
			// (a cancelled context says nothing about the registry).
			if req.Context().Err() == nil {
				p.remember(key, &cachedPing{err: err})
			}
			return nil, err
		}
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64*1024))
		resp.Body.Close()
		if rerr != nil {
			return nil, rerr
		}
		c = &cachedPing{status: resp.StatusCode, header: resp.Header.Clone(), body: body}
		if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
			p.remember(key, c)
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

func (p *pingCache) remember(key string, c *cachedPing) {
	p.mu.Lock()
	p.seen[key] = c
	p.mu.Unlock()
}
