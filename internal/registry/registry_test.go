package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/exit"
)

// authed serves ggcr's in-process registry behind Basic auth.
func authed(t *testing.T, user, pass string) string {
	t.Helper()
	reg := ggcrregistry.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestCNBRegistryAuthDrivesChecksAndHeaders(t *testing.T) {
	host := authed(t, "ci", "pw")
	good := fmt.Sprintf(`{%q: "Basic %s"}`, host, base64.StdEncoding.EncodeToString([]byte("ci:pw")))
	c, err := New(Options{CNBRegistryAuth: good})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := c.Parse(host + "/team/app:latest")
	if err := c.CheckPush(context.Background(), ref); err != nil {
		t.Fatalf("push check with good credentials: %v", err)
	}
	img, _ := random.Image(64, 1)
	if err := remote.Write(ref, img, c.RemoteOptions(context.Background())...); err != nil {
		t.Fatal(err)
	}
	d, err := c.Head(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := img.Digest(); d.Digest != want {
		t.Fatalf("digest %s, want %s", d.Digest, want)
	}
	h := lifecycleAuth(t, c, ref.String())
	if h[host] != "Basic "+base64.StdEncoding.EncodeToString([]byte("ci:pw")) {
		t.Fatalf("headers %v", h)
	}

	bad, _ := New(Options{CNBRegistryAuth: fmt.Sprintf(`{%q: "Basic %s"}`, host, base64.StdEncoding.EncodeToString([]byte("ci:nope")))})
	if err := bad.CheckPush(context.Background(), ref); exit.Code(err) != exit.RegistryAuth {
		t.Fatalf("bad credentials: code %d (%v), want %d", exit.Code(err), err, exit.RegistryAuth)
	}
	anon, _ := New(Options{})
	if _, err := anon.Head(context.Background(), ref); exit.Code(err) != exit.RegistryAuth {
		t.Fatalf("anonymous: code %d (%v)", exit.Code(err), err)
	}
	if h := lifecycleAuth(t, anon, ref.String()); len(h) != 0 {
		t.Fatalf("anonymous registries get no header, got %v", h)
	}
}

func lifecycleAuth(t *testing.T, c *Client, images ...string) map[string]string {
	t.Helper()
	v, err := c.LifecycleAuth(images...)
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]string{}
	if err := json.Unmarshal([]byte(v), &h); err != nil {
		t.Fatalf("CNB_REGISTRY_AUTH %q: %v", v, err)
	}
	return h
}

// cipack reads CNB_REGISTRY_AUTH as the lifecycle does: keys written with
// a scheme or path, and X-Identity headers.
func TestCNBRegistryAuthAcceptsWhatTheLifecycleAccepts(t *testing.T) {
	host := authed(t, "ci", "pw")
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("ci:pw"))
	c, err := New(Options{CNBRegistryAuth: fmt.Sprintf(`{"http://%s/v2/": %q, "other.example": "X-Identity id-t0ken"}`, host, basic)})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := c.Parse(host + "/team/app:latest")
	if err := c.CheckPush(context.Background(), ref); err != nil {
		t.Fatalf("a key with a scheme and path: %v", err)
	}
	h := lifecycleAuth(t, c, ref.String(), "other.example/app:latest")
	if h[host] != basic || h["other.example"] != "X-Identity id-t0ken" {
		t.Fatalf("headers %v", h)
	}
}

// The action's username/password reach every registry the command names:
// tags in another registry and the previous image too.
func TestStaticCredentialsCoverEveryNamedRegistry(t *testing.T) {
	c, _ := New(Options{Username: "u", Password: "p", Registries: []string{"a.example", "b.example"}})
	h := lifecycleAuth(t, c, "a.example/app:latest", "b.example/app:v1", "c.example/app:latest")
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("u:p"))
	if h["a.example"] != want || h["b.example"] != want {
		t.Fatalf("headers %v", h)
	}
	if _, ok := h["c.example"]; ok {
		t.Fatal("credentials leaked to a registry the command did not name")
	}
}

func TestClassify(t *testing.T) {
	srv := httptest.NewServer(ggcrregistry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c, _ := New(Options{})
	missing, _ := c.Parse(host + "/no/such:tag")
	if _, err := c.Head(context.Background(), missing); exit.Code(err) != exit.ImageNotFound || !strings.Contains(err.Error(), "no/such:tag") {
		t.Fatalf("missing image: %d %v", exit.Code(err), err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	down, _ := c.Parse(dead + "/x:y")
	if _, err := c.Head(context.Background(), down); exit.Code(err) != exit.RegistryUnreachable {
		t.Fatalf("dead registry: %d %v", exit.Code(err), err)
	}
	if err := Classify("img", "read", errors.New("weird")); exit.Code(err) != exit.Internal || !strings.Contains(err.Error(), "img") {
		t.Fatalf("other errors keep their text and name the image: %v", err)
	}
}

func TestMalformedCNBRegistryAuthDoesNotEchoSecret(t *testing.T) {
	_, err := New(Options{CNBRegistryAuth: "Basic c2VjcmV0"})
	if exit.Code(err) != exit.Usage || strings.Contains(err.Error(), "c2VjcmV0") || !strings.Contains(err.Error(), "CNB_REGISTRY_AUTH") {
		t.Fatalf("got %v", err)
	}
}

func TestGitHubTokenOnlyForGHCR(t *testing.T) {
	c, _ := New(Options{GitHubToken: "tok", GitHubActor: "octo"})
	ghcr, _ := c.Parse("ghcr.io/o/app")
	other, _ := c.Parse("registry.example/o/app")
	h := lifecycleAuth(t, c, ghcr.String(), other.String())
	if h["ghcr.io"] != "Basic "+base64.StdEncoding.EncodeToString([]byte("octo:tok")) {
		t.Fatalf("ghcr.io header %q", h["ghcr.io"])
	}
	if _, ok := h["registry.example"]; ok {
		t.Fatal("the GitHub token must not be sent to other registries")
	}
}

func TestPingCacheAsksOncePerRegistry(t *testing.T) {
	var pings atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			pings.Add(1)
			time.Sleep(20 * time.Millisecond) // let the concurrent callers pile up
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	pc := newPingCache(http.DefaultTransport)
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/", nil)
			resp, err := pc.RoundTrip(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("ping: %v %v", resp, err)
				return
			}
			resp.Body.Close()
		})
	}
	wg.Wait()
	if pings.Load() != 1 {
		t.Fatalf("%d pings reached the registry, want 1", pings.Load())
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/x/manifests/y", nil)
	if resp, err := pc.RoundTrip(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
}

// One 503 on /v2/ (a registry's front end restarting) is retried, as
// go-containerregistry retries its other requests: the push check and the
// reads that follow succeed. A registry that keeps answering 503 fails
// after a bounded number of pings.
func TestPing503IsRetried(t *testing.T) {
	var pings atomic.Int64
	failFirst := int64(1)
	srv := httptest.NewServer(ggcrHandlerWith(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/v2/" && pings.Add(1) <= failFirst {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c, err := New(Options{Insecure: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host+"/team/app:latest", name.Insecure)
	if err := c.CheckPush(context.Background(), ref); err != nil {
		t.Fatalf("one 503 on /v2/ failed the push check: %v", err)
	}
	failFirst, pings = 1<<30, atomic.Int64{}
	c, _ = New(Options{Insecure: []string{host}})
	if err := c.CheckPush(context.Background(), ref); err == nil {
		t.Fatal("a registry that always answers 503 passed the push check")
	}
	if n := pings.Load(); n < 2 || n > 8 {
		t.Fatalf("%d pings for a registry that always answers 503: want a few retries, bounded", n)
	}
}

// ggcrHandlerWith is go-containerregistry's in-process registry behind a
// hook that may answer a request itself.
func ggcrHandlerWith(hook func(http.ResponseWriter, *http.Request) bool) http.Handler {
	reg := ggcrregistry.New()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hook(w, r) {
			reg.ServeHTTP(w, r)
		}
	})
}
