package rebase

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/buildpacks/lifecycle/platform"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/registry"
)

// inProcessRegistry is go-containerregistry's registry on 127.0.0.1 for
// the test, and a client for it.
func inProcessRegistry(t *testing.T) (string, *registry.Client) {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	reg, err := registry.New(registry.Options{Insecure: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	return host, reg
}

// cnbImage is an app image as the lifecycle exports it: the run image's
// layers, then the app layers, labelled with the run image's top layer.
func cnbImage(t *testing.T, base v1.Image, app []v1.Layer, project string) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(base, app...)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := base.ConfigFile()
	top := cf.RootFS.DiffIDs[len(cf.RootFS.DiffIDs)-1]
	out, err := mutate.Config(img, v1.Config{Entrypoint: []string{"/cnb/process/web"}, Labels: map[string]string{
		platform.LifecycleMetadataLabel: fmt.Sprintf(`{"runImage":{"topLayer":%q,"reference":"run@sha256:x"}}`, top),
		platform.BuildMetadataLabel:     `{"buildpacks":[{"id":"example/shell","version":"0.0.1"}]}`,
		platform.ProjectMetadataLabel:   project,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func layers(t *testing.T, n int) []v1.Layer {
	t.Helper()
	img, err := random.Image(128, int64(n))
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	return ls
}

// A promote candidate or a rollback target must be the same build on
// another run image: anything else named by a plan or a record is refused.
func TestVerifySameBuild(t *testing.T) {
	host, reg := inProcessRegistry(t)
	repo, _ := name.NewRepository(host+"/team/app", name.Insecure)
	push := func(img v1.Image) string {
		d, _ := img.Digest()
		if err := remote.Write(repo.Digest(d.String()), img); err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	oldBase, _ := mutate.AppendLayers(empty.Image, layers(t, 2)...)
	newBase, _ := mutate.AppendLayers(empty.Image, layers(t, 2)...)
	app := layers(t, 2)
	built := push(cnbImage(t, oldBase, app, `{"source":{"type":"git"}}`))
	rebased := push(cnbImage(t, newBase, app, `{"source":{"type":"git"}}`))
	otherApp := push(cnbImage(t, newBase, layers(t, 2), `{"source":{"type":"git"}}`))
	otherSource := push(cnbImage(t, newBase, app, `{"source":{"type":"git","version":{"commit":"evil"}}}`))
	withCmd := cnbImage(t, newBase, app, `{"source":{"type":"git"}}`)
	wcf, _ := withCmd.ConfigFile()
	wcf = wcf.DeepCopy()
	wcf.Config.Cmd = []string{"--", "sh", "-c", "evil"} // the launcher would run it
	withCmd, _ = mutate.ConfigFile(withCmd, wcf)
	otherCmd := push(withCmd)
	plain, _ := random.Image(64, 2)
	notCNB := push(plain)
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: cnbImage(t, newBase, app, `{"source":{"type":"git"}}`),
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	id, _ := idx.Digest()
	if err := remote.WriteIndex(repo.Digest(id.String()), idx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		a, b string
		ok   bool
	}{
		{"a rebase", built, rebased, true},
		{"the undo of a rebase", rebased, built, true},
		{"the same digest", built, built, true},
		{"other app layers", built, otherApp, false},
		{"other project metadata", built, otherSource, false},
		{"the same layers with another command", built, otherCmd, false},
		{"not a CNB image", built, notCNB, false},
		{"an index for an image", built, id.String(), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := VerifySameBuild(context.Background(), reg, repo, c.a, c.b)
			if c.ok != (err == nil) {
				t.Fatalf("VerifySameBuild = %v, want ok=%v", err, c.ok)
			}
			if err != nil && !errors.Is(err, ErrNotARebase) {
				t.Fatalf("%v is not ErrNotARebase", err)
			}
		})
	}
}

// A rollback record is an artifact anyone with push access can write: a
// forged one naming an image that is not the same build is refused, and
// the tags it lists in another repository are never moved.
func TestRollbackRefusesAForgedRecord(t *testing.T) {
	host, reg := inProcessRegistry(t)
	ctx := context.Background()
	repo, _ := name.NewRepository(host+"/team/app", name.Insecure)
	other, _ := name.NewRepository(host+"/team/other", name.Insecure)
	base1, _ := mutate.AppendLayers(empty.Image, layers(t, 1)...)
	base2, _ := mutate.AppendLayers(empty.Image, layers(t, 1)...)
	app := layers(t, 1)
	put := func(ref name.Reference, img v1.Image) *remote.Descriptor {
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		d, err := reg.Get(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	built := put(repo.Tag("built"), cnbImage(t, base1, app, `{}`))
	rebased := put(repo.Tag("latest"), cnbImage(t, base2, app, `{}`))
	evilImg, _ := random.Image(64, 1)
	evil := put(repo.Tag("evil"), evilImg)
	victim := put(other.Tag("prod"), cnbImage(t, base2, app, `{}`))
	if victim.Digest != rebased.Digest {
		t.Fatal("the other repository's tag should hold the same digest")
	}
	now := time.Now()
	tags := []string{repo.Tag("latest").String(), other.Tag("prod").String()}
	if err := recordPrevious(ctx, reg, repo, rebased.Descriptor, built.Digest.String(), tags, now); err != nil {
		t.Fatal(err)
	}
	if err := recordPrevious(ctx, reg, repo, rebased.Descriptor, evil.Digest.String(), tags, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	out := Rollback(ctx, reg, []Target{{Image: repo.Tag("latest").String()}})
	if len(out) != 1 || out[0].Verdict != Failed || out[0].Reason != ReasonNotARebase {
		t.Fatalf("rollback with a forged newest record: %+v, want refused", out)
	}
	for ref, want := range map[name.Reference]v1.Hash{repo.Tag("latest"): rebased.Digest, other.Tag("prod"): rebased.Digest} {
		if d, _ := reg.Head(ctx, ref); d.Digest != want {
			t.Fatalf("%s moved to %s", ref, d.Digest)
		}
	}
	// The genuine record alone: rolled back, and only in this repository.
	if err := recordPrevious(ctx, reg, repo, rebased.Descriptor, built.Digest.String(), tags, now.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	out = Rollback(ctx, reg, []Target{{Image: repo.Tag("latest").String()}})
	if len(out) != 1 || !out[0].Applied || out[0].NewDigest != built.Digest.String() {
		t.Fatalf("rollback with a genuine record: %+v", out)
	}
	if d, _ := reg.Head(ctx, other.Tag("prod")); d.Digest != rebased.Digest {
		t.Fatal("a record's tag in another repository was moved")
	}
}
