package pull

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"github.com/cipack/cipack/internal/testenv"
)

// What a restored --builder-blobs cache holds in place of a blob (a FIFO,
// whose open once hung forever; a directory, which once failed every
// later build; links, which must not be followed out of the cache) costs
// one fetch of that blob, and the build after it fetches nothing.
func TestPlantedBlobCostsOneFetch(t *testing.T) {
	testenv.NeedRoot(t)
	host, c := testRegistry(t)
	ref := push(t, host, "builder", builderLayers(t)...)
	counter := testenv.StartLayerCounter(t, host, ref)
	defer counter.Close()
	ref = strings.Replace(ref, host, counter.Host, 1)
	blobs := filepath.Join(t.TempDir(), "blobs")
	build := func(t *testing.T, what string) int {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		waitFor(t, 10*time.Second, func() {
			if _, err := PrepareWith(ctx, c, ref, filepath.Join(t.TempDir(), "store"), Blobs(blobs)); err != nil {
				t.Errorf("%s: %v", what, err)
			}
		})
		if t.Failed() {
			t.FailNow()
		}
		return counter.Take()
	}
	if n := build(t, "first build"); n != 2 {
		t.Fatalf("first build fetched %d blobs, want 2", n)
	}
	d, _ := builderLayers(t)[0].Digest()
	victim := filepath.Join(blobs, "blobs", "sha256", d.Hex)
	genuine, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	hostFile := filepath.Join(outside, "genuine")
	for _, tc := range []struct {
		name  string
		plant func() error
	}{
		{"directory", func() error { return os.MkdirAll(filepath.Join(victim, "sub"), 0o755) }},
		// A link to a file outside holding the genuine bytes: following
		// it would cost no fetch, and removing it must spare the file.
		{"link out", func() error {
			if err := os.WriteFile(hostFile, genuine, 0o644); err != nil {
				return err
			}
			return os.Symlink(hostFile, victim)
		}},
		{"fifo", func() error { return syscall.Mkfifo(victim, 0o644) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.RemoveAll(victim); err != nil {
				t.Fatal(err)
			}
			if err := tc.plant(); err != nil {
				t.Fatal(err)
			}
			counter.Take()
			if n := build(t, tc.name); n != 1 {
				t.Fatalf("%d blobs fetched, want 1", n)
			}
			if fi, err := os.Lstat(victim); err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("the blob is %v, %v; want a regular file", fi, err)
			}
			if n := build(t, "then again"); n != 0 {
				t.Fatalf("the build after it fetched %d blobs, want 0", n)
			}
		})
	}
	wantContent(t, hostFile, string(genuine))
}

// The layout's own directories restored as links (blobs/sha256 pointing
// at a host directory) are replaced, and what the link pointed at is
// left alone.
func TestPlantedBlobDirLinkIsReplaced(t *testing.T) {
	testenv.NeedRoot(t)
	host, c := testRegistry(t)
	ref := push(t, host, "builder", builderLayers(t)...)
	blobs := filepath.Join(t.TempDir(), "blobs")
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "keep"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(blobs, "blobs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(blobs, "blobs", "sha256")); err != nil {
		t.Fatal(err)
	}
	if _, err := PrepareWith(context.Background(), c, ref, filepath.Join(t.TempDir(), "store"), Blobs(blobs)); err != nil {
		t.Fatalf("a linked blobs/sha256: %v", err)
	}
	if fi, err := os.Lstat(filepath.Join(blobs, "blobs", "sha256")); err != nil || !fi.IsDir() {
		t.Fatalf("blobs/sha256 is %v, %v; want a real directory", fi, err)
	}
	if es := listOrNil(outside); len(es) != 1 || es[0] != "keep" {
		t.Fatalf("the directory behind the link was changed: %v", es)
	}
}

// SIGTERM stops a build promptly while it reads a restored blob cache:
// a FIFO planted as a blob, then a registry that sends half the blob and
// stalls. Before blobs were opened O_NONBLOCK the open hung forever and
// the signal changed nothing.
func TestSIGTERMStopsBlobCacheRead(t *testing.T) {
	testenv.NeedRoot(t)
	layer := tarLayer(t, file("usr/lib/big", strings.Repeat("0123456789abcdef", 1<<16), 0o644))
	d, _ := layer.Digest()
	var asked atomic.Bool
	h := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+d.String()) || !asked.CompareAndSwap(false, true) {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		w.Header().Set("Content-Length", rec.Header().Get("Content-Length"))
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes()[:rec.Body.Len()/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	ref := push(t, strings.TrimPrefix(srv.URL, "http://"), "builder", layer)
	blobs := filepath.Join(t.TempDir(), "blobs")
	if err := os.MkdirAll(filepath.Join(blobs, "blobs", "sha256"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(blobs, "blobs", "sha256", d.Hex), 0o644); err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0], "-test.run=^TestSIGTERMChild$")
	child.Env = append(os.Environ(), "CIPACK_PULL_CHILD_REF="+ref, "CIPACK_PULL_CHILD_CACHE="+filepath.Join(t.TempDir(), "store"), "CIPACK_PULL_CHILD_BLOBS="+blobs)
	var out bytes.Buffer
	child.Stdout, child.Stderr = &out, &out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { child.Wait(); close(done) }()
	for deadline := time.Now().Add(5 * time.Second); !asked.Load() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	child.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		child.Process.Kill()
		<-done
		t.Fatalf("still running 5 s after SIGTERM (blob fetched: %v): %s", asked.Load(), out.String())
	}
	if !strings.Contains(out.String(), "canceled=true") {
		t.Fatalf("the child did not stop on its context: %s", out.String())
	}
}

// TestSIGTERMChild is the build TestSIGTERMStopsBlobCacheRead signals:
// its context is main's (canceled by SIGTERM).
func TestSIGTERMChild(t *testing.T) {
	ref := os.Getenv("CIPACK_PULL_CHILD_REF")
	if ref == "" || os.Getenv("CIPACK_PULL_CHILD_BLOBS") == "" {
		t.Skip("run by TestSIGTERMStopsBlobCacheRead")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	_, err := PrepareWith(ctx, newClient(t), ref, os.Getenv("CIPACK_PULL_CHILD_CACHE"), Blobs(os.Getenv("CIPACK_PULL_CHILD_BLOBS")))
	fmt.Printf("PrepareWith: canceled=%v: %v\n", errors.Is(err, context.Canceled), err)
}
