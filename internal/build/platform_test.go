package build

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/registry"
)

// The preflight's first read of the builder, on an index without this
// host's platform, is exit 6 blamed on --builder (it was exit 1).
func TestPreflightBuilderWithoutHostPlatform(t *testing.T) {
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	reg, err := registry.New(registry.Options{Insecure: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	p := v1.Platform{OS: "linux", Architecture: "s390x"}
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	ref := host + "/builder:latest"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	_, err = builderAPIs(context.Background(), reg, ref)
	if exit.Code(err) != exit.Builder || !strings.HasPrefix(err.Error(), "--builder: ") || !strings.Contains(err.Error(), "linux/s390x") {
		t.Fatalf("err = %v (exit %d), want exit %d naming --builder", err, exit.Code(err), exit.Builder)
	}
}

// A single-image builder (no index) of another platform, by its config,
// is exit 6 on --builder in the preflight too.
func TestPreflightSingleImageBuilderOfAnotherPlatform(t *testing.T) {
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	reg, err := registry.New(registry.Options{Insecure: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "riscv64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	ref := host + "/builder:latest"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	_, err = builderAPIs(context.Background(), reg, ref)
	if exit.Code(err) != exit.Builder || !strings.HasPrefix(err.Error(), "--builder: ") || !strings.Contains(err.Error(), "is a linux/riscv64 image") {
		t.Fatalf("err = %v (exit %d), want exit %d naming --builder", err, exit.Code(err), exit.Builder)
	}
}
