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
// The recorded run image is runRepo (default "run") at base's digest.
func cnbImage(t *testing.T, base v1.Image, app []v1.Layer, project string, runRepo ...string) v1.Image {
	t.Helper()
	run := "run"
	if len(runRepo) > 0 {
		run = runRepo[0]
	}
	baseDigest, _ := base.Digest()
	img, err := mutate.AppendLayers(base, app...)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := base.ConfigFile()
	top := cf.RootFS.DiffIDs[len(cf.RootFS.DiffIDs)-1]
	out, err := mutate.Config(img, v1.Config{Entrypoint: []string{"/cnb/process/web"}, Labels: map[string]string{
		platform.LifecycleMetadataLabel: fmt.Sprintf(`{"runImage":{"topLayer":%q,"reference":"%s@%s"}}`, top, run, baseDigest),
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
	pushIndex := func(children ...mutate.IndexAddendum) string {
		idx := mutate.AppendManifests(empty.Index, children...)
		d, _ := idx.Digest()
		if err := remote.WriteIndex(repo.Digest(d.String()), idx); err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	amd := &v1.Platform{OS: "linux", Architecture: "amd64"}
	att, _ := random.Image(32, 1)
	attestation := mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"}}}
	onPlatform := func(img v1.Image, p *v1.Platform) mutate.IndexAddendum {
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = p.OS, p.Architecture
		img, _ = mutate.ConfigFile(img, cf)
		return mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}}
	}
	idxBuilt := pushIndex(onPlatform(cnbImage(t, oldBase, app, `{}`), amd), attestation)
	idxRebased := pushIndex(onPlatform(cnbImage(t, newBase, app, `{}`), amd), attestation)
	relabeled := attestation
	relabeled.Descriptor.Platform = &v1.Platform{OS: "linux", Architecture: "arm64"}
	idxRelabeled := pushIndex(onPlatform(cnbImage(t, newBase, app, `{}`), amd), relabeled)
	wrongConfig := onPlatform(cnbImage(t, newBase, app, `{}`), &v1.Platform{OS: "windows", Architecture: "s390x"})
	wrongConfig.Descriptor.Platform = amd
	idxWrongConfig := pushIndex(wrongConfig, attestation)
	for _, c := range []struct {
		name string
		a, b string
		ok   bool
	}{
		{"an index rebased", idxBuilt, idxRebased, true},
		{"an index whose attestation is relabeled as a platform", idxBuilt, idxRelabeled, false},
		{"an index whose child's config is for another platform", idxBuilt, idxWrongConfig, false},
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
// forged one naming an image that is not the same build is passed over
// even when it is the newest (it neither blocks the rollback nor picks
// its target), a digest with only forged records is refused, and the tags
// a record lists in another repository are never moved.
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
	runRepo := host + "/team/run"
	for i, b := range []v1.Image{base1, base2} {
		r, _ := name.ParseReference(fmt.Sprintf("%s:v%d", runRepo, i+1), name.Insecure)
		put(r, b)
	}
	built := put(repo.Tag("built"), cnbImage(t, base1, app, `{}`, runRepo))
	rebased := put(repo.Tag("latest"), cnbImage(t, base2, app, `{}`, runRepo))
	evilImg, _ := random.Image(64, 1)
	evil := put(repo.Tag("evil"), evilImg)
	// The same build over a layer of the attacker's, declared as the top
	// of the run image: the run image it records has no such layer.
	evilBase, _ := mutate.AppendLayers(base1, layers(t, 1)...)
	hidden := cnbImage(t, evilBase, app, `{}`, runRepo)
	hcf, _ := hidden.ConfigFile()
	hcf = hcf.DeepCopy()
	b1, _ := base1.Digest()
	hcf.Config.Labels[platform.LifecycleMetadataLabel] = strings.Replace(hcf.Config.Labels[platform.LifecycleMetadataLabel], mustDigest(t, evilBase), b1.String(), 1)
	hidden, _ = mutate.ConfigFile(hidden, hcf)
	evilUnder := put(repo.Tag("evil-under"), hidden)
	victim := put(other.Tag("prod"), cnbImage(t, base2, app, `{}`, runRepo))
	if victim.Digest != rebased.Digest {
		t.Fatal("the other repository's tag should hold the same digest")
	}
	now := time.Now()
	tags := []string{repo.Tag("latest").String(), other.Tag("prod").String()}
	// Only forged records: refused, nothing moves.
	for i, forged := range []*remote.Descriptor{evil, evilUnder} {
		if err := recordPrevious(ctx, reg, repo, rebased.Descriptor, forged.Digest.String(), tags, now.Add(time.Duration(i+1)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	out := Rollback(ctx, reg, []Target{{Image: repo.Tag("latest").String()}})
	if len(out) != 1 || out[0].Verdict != Failed || out[0].Reason != ReasonNotARebase {
		t.Fatalf("rollback with forged records only: %+v, want refused", out)
	}
	for ref, want := range map[name.Reference]v1.Hash{repo.Tag("latest"): rebased.Digest, other.Tag("prod"): rebased.Digest} {
		if d, _ := reg.Head(ctx, ref); d.Digest != want {
			t.Fatalf("%s moved to %s", ref, d.Digest)
		}
	}
	// The genuine record, older than both forged ones: rolled back to it,
	// and only in this repository.
	if err := recordPrevious(ctx, reg, repo, rebased.Descriptor, built.Digest.String(), tags, now); err != nil {
		t.Fatal(err)
	}
	out = Rollback(ctx, reg, []Target{{Image: repo.Tag("latest").String()}})
	if len(out) != 1 || !out[0].Applied || out[0].NewDigest != built.Digest.String() {
		t.Fatalf("rollback with a genuine record under two newer forged ones: %+v", out)
	}
	if d, _ := reg.Head(ctx, other.Tag("prod")); d.Digest != rebased.Digest {
		t.Fatal("a record's tag in another repository was moved")
	}
}

// A forged record that passes every check (it names an older build of the
// same app, on a run image of the run image repository) cannot pick the
// rollback target by claiming a time after the registry's clock.
func TestRollbackTargetIsNotPickedByARecordFromTheFuture(t *testing.T) {
	host, reg := inProcessRegistry(t)
	ctx := context.Background()
	repo, _ := name.NewRepository(host+"/team/app", name.Insecure)
	runRepo := host + "/team/run"
	app := layers(t, 1)
	var builds []*remote.Descriptor
	for i := range 3 {
		base, _ := mutate.AppendLayers(empty.Image, layers(t, 1)...)
		r, _ := name.ParseReference(fmt.Sprintf("%s:v%d", runRepo, i+1), name.Insecure)
		if err := remote.Write(r, base); err != nil {
			t.Fatal(err)
		}
		img := cnbImage(t, base, app, `{}`, runRepo)
		if err := remote.Write(repo.Tag("latest"), img); err != nil {
			t.Fatal(err)
		}
		d, err := reg.Get(ctx, repo.Tag("latest"))
		if err != nil {
			t.Fatal(err)
		}
		builds = append(builds, d)
	}
	oldest, previous, current := builds[0], builds[1], builds[2]
	now := time.Now()
	if err := recordPrevious(ctx, reg, repo, current.Descriptor, previous.Digest.String(), nil, now); err != nil {
		t.Fatal(err)
	}
	if err := recordPrevious(ctx, reg, repo, current.Descriptor, oldest.Digest.String(), nil, time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	out := Rollback(ctx, reg, []Target{{Image: repo.Tag("latest").String()}})
	if len(out) != 1 || !out[0].Applied || out[0].NewDigest != previous.Digest.String() {
		t.Fatalf("rollback: %+v, want back to %s (not the oldest build %s)", out, previous.Digest, oldest.Digest)
	}
}

func mustDigest(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}
