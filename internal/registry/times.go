package registry

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// ManifestTimes is what a registry says about time in its answer for a
// manifest. The OCI distribution API has no field for when a manifest was
// pushed: distribution (2.8 and 3) and go-containerregistry's registry
// send no Last-Modified for manifests, only the Date every HTTP server
// sends (its clock at the answer). Modified is set only where a registry
// does send Last-Modified.
type ManifestTimes struct {
	Modified time.Time // Last-Modified: when the registry stored it
	Now      time.Time // Date: the registry's clock when it answered
}

// ManifestTimes asks the registry (one HEAD) what it says about time for
// the manifest ref names.
func (c *Client) ManifestTimes(ctx context.Context, ref name.Digest) (ManifestTimes, error) {
	capture := &headerCapture{next: c.transport}
	if _, err := remote.Head(ref, append(c.RemoteOptions(ctx), remote.WithTransport(capture))...); err != nil {
		return ManifestTimes{}, Classify(ref.String(), "read", err)
	}
	h := capture.header()
	var t ManifestTimes
	// HTTP dates have whole seconds; a malformed one says nothing.
	if v := h.Get("Last-Modified"); v != "" {
		t.Modified, _ = http.ParseTime(v)
	}
	if v := h.Get("Date"); v != "" {
		t.Now, _ = http.ParseTime(v)
	}
	return t, nil
}

// headerCapture keeps the headers of the last manifest answer that
// passes through it (below remote's auth and retries).
type headerCapture struct {
	next http.RoundTripper
	mu   sync.Mutex
	h    http.Header
}

func (c *headerCapture) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if err == nil && strings.Contains(r.URL.Path, "/manifests/") {
		c.mu.Lock()
		c.h = resp.Header.Clone()
		c.mu.Unlock()
	}
	return resp, err
}

func (c *headerCapture) header() http.Header {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.h == nil {
		return http.Header{}
	}
	return c.h
}
