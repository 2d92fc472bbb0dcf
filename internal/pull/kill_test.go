package pull

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"github.com/cipack/cipack/internal/registry"
	"github.com/cipack/cipack/internal/testenv"
)

// A build SIGKILLed mid-unpack leaves its .unpack-* directory, and its
// layer lock dies with it: the next build removes the leftover, unpacks
// the layer and leaves nothing behind.
func TestKilledUnpackIsCleanedUp(t *testing.T) {
	testenv.NeedRoot(t)
	var stall atomic.Bool
	stall.Store(true)
	regHandler := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	var layerPath atomic.Value
	layerPath.Store("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !stall.Load() || r.Method != http.MethodGet || r.URL.Path != layerPath.Load().(string) {
			regHandler.ServeHTTP(w, r)
			return
		}
		// Half the layer's blob, then silence until the client is gone.
		rec := httptest.NewRecorder()
		regHandler.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		w.Header().Set("Content-Length", rec.Header().Get("Content-Length"))
		w.WriteHeader(rec.Code)
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	big := tarLayer(t, file("usr/lib/big", strings.Repeat("0123456789abcdef", 1<<16), 0o644), file("usr/lib/after", "x", 0o644))
	d, _ := big.Digest()
	layerPath.Store("/v2/builder/blobs/" + d.String())
	diffID, _ := big.DiffID()
	ref := push(t, host, "builder", tarLayer(t, file("etc/motd", "hi", 0o644)), big)
	cache := filepath.Join(t.TempDir(), "cache")

	child := exec.Command(os.Args[0], "-test.run=^TestKilledUnpackChild$")
	child.Env = append(os.Environ(), "CIPACK_PULL_CHILD_REF="+ref, "CIPACK_PULL_CHILD_CACHE="+cache)
	var out bytes.Buffer
	child.Stdout, child.Stderr = &out, &out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !slices.ContainsFunc(listOrNil(filepath.Join(cache, layersDir)), func(n string) bool { return strings.HasPrefix(n, unpackPrefix+diffID.Hex) }) &&
		time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // let it write into the tree
	child.Process.Kill()               // SIGKILL: no deferred cleanup runs
	child.Wait()
	before := listOrNil(filepath.Join(cache, layersDir))
	if !slices.ContainsFunc(before, func(n string) bool { return strings.HasPrefix(n, unpackPrefix) }) {
		t.Fatalf("the child never started unpacking (left %v): %s", before, out.String())
	}

	stall.Store(false)
	b := prepare(t, newClient(t), ref, cache)
	if b.Unpacked != 1 || b.Verified != 1 {
		t.Fatalf("after the kill: unpacked %d verified %d", b.Unpacked, b.Verified)
	}
	for _, n := range listOrNil(filepath.Join(cache, layersDir)) {
		if strings.HasPrefix(n, ".") {
			t.Fatalf("left behind after a rerun: %s (had %v)", n, before)
		}
	}
}

// TestKilledUnpackChild is the build TestKilledUnpackIsCleanedUp kills.
func TestKilledUnpackChild(t *testing.T) {
	ref := os.Getenv("CIPACK_PULL_CHILD_REF")
	if ref == "" {
		t.Skip("run by TestKilledUnpackIsCleanedUp")
	}
	_, err := Prepare(context.Background(), newClient(t), ref, os.Getenv("CIPACK_PULL_CHILD_CACHE"))
	t.Fatalf("the stalled Prepare returned: %v", err)
}

func newClient(t *testing.T) *registry.Client {
	c, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func listOrNil(dir string) []string {
	es, _ := os.ReadDir(dir)
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}
