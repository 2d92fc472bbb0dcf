package testenv

import (
	"net/http"
	"strings"
	"sync"
	"testing"
)

// LayerCounter is a proxy to a registry that counts the GETs of one
// image's layer blobs: how tests see whether a build downloaded layers.
type LayerCounter struct {
	*Proxy
	mu      sync.Mutex
	fetched int
}

// StartLayerCounter proxies target and counts GETs of ref's layer blobs.
// Stop it with Close.
func StartLayerCounter(t testing.TB, target, ref string) *LayerCounter {
	t.Helper()
	layers, err := MustPull(t, ref).Layers()
	if err != nil {
		t.Fatal(err)
	}
	digests := map[string]bool{}
	for _, l := range layers {
		d, _ := l.Digest()
		digests[d.String()] = true
	}
	c := &LayerCounter{}
	c.Proxy, err = StartProxy(target, ProxyOptions{Fault: func(_ http.ResponseWriter, r *http.Request) bool {
		if i := strings.Index(r.URL.Path, "/blobs/"); i >= 0 && r.Method == http.MethodGet && digests[r.URL.Path[i+len("/blobs/"):]] {
			c.mu.Lock()
			c.fetched++
			c.mu.Unlock()
		}
		return false
	}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Take returns the layer GETs counted since the last Take.
func (c *LayerCounter) Take() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.fetched
	c.fetched = 0
	return n
}
