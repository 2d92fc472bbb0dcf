package pull

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/cipack/cipack/internal/registry"
)

// file, dir, link, whiteout: tar entries of test layers.
type tentry struct {
	h    tar.Header
	body string
}

func file(name, body string, mode int64) tentry {
	return tentry{h: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode}, body: body}
}
func dir(name string, mode int64) tentry {
	return tentry{h: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: mode}}
}
func link(name, target string) tentry {
	return tentry{h: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target}}
}

// tarLayer makes a (gzipped) layer from entries.
func tarLayer(t testing.TB, entries ...tentry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.h
		h.Size = int64(len(e.body))
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(e.body))
	}
	_ = tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testRegistry serves an in-memory registry on 127.0.0.1 and returns its
// host and a client for it.
func testRegistry(t testing.TB) (string, *registry.Client) {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	c, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(srv.URL, "http://"), c
}

// push writes an image of layers (lowest first) as host/repo:latest.
func push(t testing.TB, host, repo string, layers ...v1.Layer) string {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, v1.Config{Env: []string{"CNB_USER_ID=1000", "CNB_GROUP_ID=1001", "PATH=/bin"}, Labels: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/" + repo + ":latest"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return ref
}

// builderLayers are a small builder: a base with a setuid file and a
// sticky /tmp, then /cnb with a whiteout of a base file.
func builderLayers(t testing.TB) []v1.Layer {
	return []v1.Layer{
		tarLayer(t, dir("tmp", 0o1777), file("usr/bin/su", "su", 0o4755), file("etc/motd", "hello", 0o644)),
		tarLayer(t, dir("cnb", 0o755), file("cnb/order.toml", "[[order]]\n", 0o644),
			file("cnb/lifecycle/creator", "#!", 0o755), file("etc/.wh.motd", "", 0o644)),
	}
}

func prepare(t testing.TB, c *registry.Client, ref, cache string) *Builder {
	t.Helper()
	b, err := Prepare(context.Background(), c, ref, cache)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	return b
}

// storeEntries lists the store's layers dir.
func storeEntries(t testing.TB, cache string) []string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(cache, layersDir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func wantContent(t testing.TB, p, want string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil || string(b) != want {
		t.Fatalf("%s: %q, %v; want %q", p, b, err, want)
	}
}

// waitFor fails t when op does not return within d (a FIFO read would
// hang forever).
func waitFor(t testing.TB, d time.Duration, op func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { op(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("still running after %s", d)
	}
}
