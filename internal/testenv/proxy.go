package testenv

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
)

// Proxy is a reverse proxy on 127.0.0.1 in front of a registry. It can
// demand Basic credentials (to test 401s against a real registry) and
// counts the requests it serves.
type Proxy struct {
	Host     string
	Requests atomic.Int64
	srv      *http.Server
	ln       net.Listener

	mu    sync.Mutex
	blobs []BlobTransfer
}

// BlobTransfer is a blob that crossed the proxy.
type BlobTransfer struct {
	Digest string
	Upload bool
}

// Reset zeroes the counters.
func (p *Proxy) Reset() {
	p.Requests.Store(0)
	p.mu.Lock()
	p.blobs = nil
	p.mu.Unlock()
}

// Blobs lists the blobs downloaded (GET) and uploaded (PUT with a digest).
func (p *Proxy) Blobs() []BlobTransfer {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]BlobTransfer(nil), p.blobs...)
}

func (p *Proxy) noteBlob(r *http.Request) {
	var t BlobTransfer
	switch {
	case r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:"):
		t = BlobTransfer{Digest: r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]}
	case r.Method == http.MethodPut && r.URL.Query().Get("digest") != "":
		t = BlobTransfer{Digest: r.URL.Query().Get("digest"), Upload: true}
	default:
		return
	}
	p.mu.Lock()
	p.blobs = append(p.blobs, t)
	p.mu.Unlock()
}

// ProxyOptions configure a Proxy.
type ProxyOptions struct {
	// User and Password, when set, are required as Basic auth.
	User, Password string
	// Fault, when set, may answer a request itself (return true) instead
	// of forwarding it: fault injection for retry tests.
	Fault func(w http.ResponseWriter, r *http.Request) bool
}

// StartProxy starts a proxy to target (host:port). Stop it with Close.
func StartProxy(target string, opts ProxyOptions) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Host: ln.Addr().String(), ln: ln}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	rp.ModifyResponse = func(resp *http.Response) error {
		// Upload locations name the backend; clients must come back here.
		if loc := resp.Header.Get("Location"); loc != "" {
			if u, err := url.Parse(loc); err == nil && u.Host == target {
				u.Host = p.Host
				resp.Header.Set("Location", u.String())
			}
		}
		return nil
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.Requests.Add(1)
		p.noteBlob(r)
		if opts.User != "" {
			u, pw, ok := r.BasicAuth()
			if !ok || u != opts.User || pw != opts.Password {
				w.Header().Set("WWW-Authenticate", `Basic realm="cipack-test"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
				return
			}
		}
		if opts.Fault != nil && opts.Fault(w, r) {
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Close stops the proxy.
func (p *Proxy) Close() { _ = p.srv.Close() }
