package registry

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/cipack/cipack/internal/exit"
)

// DropTag removes the tag and never the image it named: by DELETE where
// the registry deletes tags; else through a placeholder deleted by digest,
// and it says so when the registry keeps the tag even then (ggcr's
// registry drops no tag with a manifest deleted by digest).
func TestDropTagKeepsTheImage(t *testing.T) {
	for _, noTagDelete := range []bool{false, true} {
		f := &faulty{next: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))), hits: map[string]int{}, noTagDelete: noTagDelete}
		srv := httptest.NewServer(f)
		c, err := New(Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		repo, _ := name.NewRepository(strings.TrimPrefix(srv.URL, "http://") + "/team/app")
		img, _ := random.Image(64, 1)
		d, _ := img.Digest()
		staging := repo.Tag("cipack-tmp-1")
		if err := c.Write(ctx, staging, img); err != nil {
			t.Fatal(err)
		}
		err = c.DropTag(ctx, staging)
		if _, herr := c.Head(ctx, repo.Digest(d.String())); herr != nil {
			t.Errorf("noTagDelete=%v: the image is gone: %v", noTagDelete, herr)
		}
		head, herr := c.Head(ctx, staging)
		switch {
		case !noTagDelete && (err != nil || exit.Code(herr) != exit.ImageNotFound):
			t.Errorf("a registry that deletes tags: %v; the tag: %v", err, herr)
		case noTagDelete && (err == nil || !strings.Contains(err.Error(), "placeholder")):
			t.Errorf("a registry that keeps the tag: want an error naming the placeholder, got %v", err)
		case noTagDelete && (herr != nil || head.Digest == d):
			t.Errorf("the kept tag should name the placeholder, not the image: %v %v", head, herr)
		}
		srv.Close()
	}
}

// manifestByTag deletes, on a DELETE of a tag, the manifest the tag names
// (as early zot and Harbor 1 did), and the tag with it.
type manifestByTag struct{ next http.Handler }

func (m manifestByTag) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	repo, ref, isManifest := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/"), "/manifests/")
	if isManifest && r.Method == http.MethodDelete && !strings.HasPrefix(ref, "sha256:") {
		head := httptest.NewRecorder()
		m.next.ServeHTTP(head, httptest.NewRequest(http.MethodHead, r.URL.Path, nil))
		if d := head.Header().Get("Docker-Content-Digest"); d != "" {
			m.next.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodDelete, "/v2/"+repo+"/manifests/"+d, nil))
		}
	}
	m.next.ServeHTTP(w, r)
}

// On a registry that takes a tag's DELETE for its manifest's, dropping
// the staging tag must not delete the image it names: the user's tags
// are on it (or an identical earlier build is).
func TestDropTagNeverDeletesTheImageByTag(t *testing.T) {
	srv := httptest.NewServer(manifestByTag{next: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))})
	defer srv.Close()
	c, err := New(Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	repo, _ := name.NewRepository(strings.TrimPrefix(srv.URL, "http://") + "/team/app")
	img, _ := random.Image(64, 1)
	d, _ := img.Digest()
	staging := repo.Tag("cipack-tmp-1")
	for _, tag := range []name.Tag{repo.Tag("latest"), staging} {
		if err := c.Write(ctx, tag, img); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.DropTag(ctx, staging); err != nil {
		t.Errorf("drop: %v", err)
	}
	if _, err := c.Head(ctx, repo.Digest(d.String())); err != nil {
		t.Errorf("the image the user's tag holds is gone: %v", err)
	}
	if _, err := c.Head(ctx, staging); exit.Code(err) != exit.ImageNotFound {
		t.Errorf("the staging tag is still there: %v", err)
	}
}
