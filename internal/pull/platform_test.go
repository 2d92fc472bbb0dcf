package pull

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/registry"
)

// A builder index with no child for this host's platform is a builder
// that cannot serve (exit 6) blamed on --builder and naming the platforms
// it has, not an internal error (exit 1).
func TestBuilderWithoutHostPlatformBlamesBuilder(t *testing.T) {
	host, c := testRegistry(t)
	ref := pushIndexOf(t, host, "builder", v1.Platform{OS: "linux", Architecture: "riscv64"})
	_, err := Prepare(context.Background(), c, ref, filepath.Join(t.TempDir(), "store"))
	if exit.Code(err) != exit.Builder || !strings.HasPrefix(err.Error(), "--builder: ") || !strings.Contains(err.Error(), "(it has linux/riscv64)") {
		t.Fatalf("err = %v (exit %d), want exit %d naming --builder and the platforms it has", err, exit.Code(err), exit.Builder)
	}
}

// A builder that is one image (no index) of another platform, by its
// config's os and architecture, is the same failure: exit 6 on --builder
// naming both platforms, not a build that fails later on exec.
func TestSingleImageBuilderOfAnotherPlatform(t *testing.T) {
	host, c := testRegistry(t)
	ref := pushImageOf(t, host, "builder", v1.Platform{OS: "linux", Architecture: "riscv64"})
	_, err := Prepare(context.Background(), c, ref, filepath.Join(t.TempDir(), "store"))
	want := "is a linux/riscv64 image, not " + registry.PlatformString(registry.HostPlatform())
	if exit.Code(err) != exit.Builder || !strings.HasPrefix(err.Error(), "--builder: ") || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v (exit %d), want exit %d naming --builder and %q", err, exit.Code(err), exit.Builder, want)
	}
	// The host's own platform, and a config that names none, are served.
	for _, p := range []v1.Platform{registry.HostPlatform(), {}} {
		ref := pushImageOf(t, host, "builder", p)
		if _, err := Prepare(context.Background(), c, ref, filepath.Join(t.TempDir(), "store")); err != nil {
			t.Fatalf("a builder of %q: %v", registry.PlatformString(p), err)
		}
	}
}

// pushImageOf pushes one small image whose config names platform p as
// host/repo:latest.
func pushImageOf(t testing.TB, host, repo string, p v1.Platform) string {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, tarLayer(t, file("cnb/order.toml", "", 0o644)))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	if img, err = mutate.ConfigFile(img, cf); err != nil {
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

// pushIndexOf pushes an index of one small image per platform as
// host/repo:latest.
func pushIndexOf(t testing.TB, host, repo string, platforms ...v1.Platform) string {
	t.Helper()
	idx := v1.ImageIndex(empty.Index)
	for _, p := range platforms {
		img, err := mutate.AppendLayers(empty.Image, tarLayer(t, file("cnb/order.toml", "", 0o644)))
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	ref := host + "/" + repo + ":latest"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	return ref
}
