package merge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/cnb"
	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/registry"
)

// world is a registry on 127.0.0.1 (go-containerregistry's in-process
// one) that counts manifest writes, and a client for it.
type world struct {
	host   string
	reg    *registry.Client
	writes atomic.Int32
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{}
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
			w.writes.Add(1)
		}
		inner.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	w.host = strings.TrimPrefix(srv.URL, "http://")
	var err error
	if w.reg, err = registry.New(registry.Options{Insecure: []string{w.host}}); err != nil {
		t.Fatal(err)
	}
	return w
}

// push writes a CNB-labelled image for os/arch built from project and
// returns its reference by digest.
func (w *world) push(t *testing.T, repo, os, arch, project string, isCNB bool) string {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = os, arch
	cf.Config.Labels = map[string]string{cnb.ProjectMetadataLabel: project}
	if isCNB {
		cf.Config.Labels[cnb.LifecycleMetadataLabel] = "{}"
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	ref, _ := name.ParseReference(fmt.Sprintf("%s/%s@%s", w.host, repo, d), name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	return ref.String()
}

func TestMerge(t *testing.T) {
	w := newWorld(t)
	amd := w.push(t, "team/app", "linux", "amd64", "src@1", true)
	arm := w.push(t, "team/app", "linux", "arm64", "src@1", true)
	armOther := w.push(t, "team/app", "linux", "arm64", "src@2", true)
	amd2 := w.push(t, "team/app", "linux", "amd64", "src@1", true)
	plain := w.push(t, "team/app", "linux", "s390x", "src@1", false)
	hostile := w.push(t, "team/app", "linux", "arm64\n::set-output name=x::y", "src@1", true)
	target := w.host + "/team/app:latest"
	cases := []struct {
		name    string
		opts    Options
		code    int
		want    string
		written bool
	}{
		{"two platforms", Options{Image: target, Tags: []string{w.host + "/team/app:v1"}, Sources: []string{arm, amd}}, exit.OK, "", true},
		{"one platform twice", Options{Image: target, Sources: []string{amd, amd2}}, exit.Usage, "are both linux/amd64", false},
		{"another source", Options{Image: target, Sources: []string{amd, armOther}}, exit.Usage, "built from different sources", false},
		{"another source, waived", Options{Image: target, Sources: []string{amd, armOther}, AnySource: true}, exit.OK, "", true},
		{"not a CNB image", Options{Image: target, Sources: []string{amd, plain}}, exit.Usage, "not a CNB image", false},
		{"a hostile platform", Options{Image: target, Sources: []string{amd, hostile}}, exit.Usage, "not an os/architecture/variant name", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := w.writes.Load()
			res, err := Run(context.Background(), c.opts, w.reg, io.Discard)
			if exit.Code(err) != c.code || (err != nil && !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("exit %d (%v), want %d with %q", exit.Code(err), err, c.code, c.want)
			}
			if wrote := w.writes.Load() != before; wrote != c.written {
				t.Fatalf("manifests written: %v, want %v", wrote, c.written)
			}
			if err != nil {
				return
			}
			if strings.Join(res.Platforms, ",") != "linux/amd64,linux/arm64" {
				t.Fatalf("platforms %v, sorted amd64 then arm64 expected", res.Platforms)
			}
			for _, tag := range append([]string{c.opts.Image}, c.opts.Tags...) {
				ref, _ := name.ParseReference(tag, name.Insecure)
				d, err := w.reg.Head(context.Background(), ref)
				if err != nil || d.Digest.String() != res.Digest {
					t.Fatalf("%s: %v %v, want %s", tag, d, err, res.Digest)
				}
			}
			ref, _ := name.ParseReference(res.ImageRef, name.Insecure)
			idx, err := remote.Index(ref)
			if err != nil {
				t.Fatal(err)
			}
			im, _ := idx.IndexManifest()
			if len(im.Manifests) != 2 || im.Manifests[0].Platform.Architecture != "amd64" {
				t.Fatalf("index %+v", im.Manifests)
			}
		})
	}
}

// The hint after a failed tag move tells what the undo left.
func TestMoveHintTellsTheTruth(t *testing.T) {
	if h := moveHint(errors.New("PUT refused")); !strings.Contains(h, "no tag was left half-moved") {
		t.Fatalf("undo succeeded: %q", h)
	}
	if h := moveHint(fmt.Errorf("PUT refused; and %w: a:v1", registry.ErrTagsLeftMoved)); strings.Contains(h, "no tag was left") || !strings.Contains(h, "by hand") {
		t.Fatalf("undo failed: %q", h)
	}
}
