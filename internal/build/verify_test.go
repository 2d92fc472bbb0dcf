package build

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/registry"
	"github.com/cipack/cipack/internal/safefs"
)

// The digest a build reports is the registry's: a report that names
// another digest, or a tag left on another image, fails with exit 9.
func TestVerifyPushedTrustsTheRegistryNotTheReport(t *testing.T) {
	srv := httptest.NewServer(ggcrregistry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	push := func(ref string) string {
		img, _ := random.Image(64, 1)
		r, _ := name.ParseReference(ref)
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		return d.String()
	}
	built := push(host + "/app:latest")
	push(host + "/app:v1")
	if err := remote.Tag(mustTag(t, host+"/app:v2"), mustImage(t, host+"/app:latest")); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	refs := func(tags ...string) []name.Reference {
		out := []name.Reference{mustTag(t, host+"/app:latest")}
		for _, tg := range tags {
			out = append(out, mustTag(t, host+"/app:"+tg))
		}
		return out
	}
	ctx := context.Background()
	if got, err := verifyPushed(ctx, reg, refs("v2"), built); err != nil || got != built {
		t.Fatalf("consistent tags: %s %v", got, err)
	}
	forged := "sha256:" + strings.Repeat("de", 32)
	if _, err := verifyPushed(ctx, reg, refs(), forged); exit.Code(err) != exit.Export || !strings.Contains(err.Error(), "report says") {
		t.Fatalf("forged report: %v, want exit %d", err, exit.Export)
	}
	if _, err := verifyPushed(ctx, reg, refs("v2", "v1"), built); exit.Code(err) != exit.Export || !strings.Contains(err.Error(), "app:v1 is at") {
		t.Fatalf("diverged tag: %v, want exit %d naming app:v1", err, exit.Export)
	}
	res := &Result{Image: host + "/app:latest", Digest: forged[:20], ImageRef: host + "/app@" + built, Tags: []string{host + "/app:latest"}}
	if err := res.Check(); err == nil {
		t.Fatal("a malformed digest must not become an output")
	}
	res.Digest = built
	if err := res.Check(); err != nil {
		t.Fatalf("a good result: %v", err)
	}
	res.Tags = append(res.Tags, "x\n::set-output name=a::b")
	if err := res.Check(); err == nil {
		t.Fatal("a tag with a newline must not become an output")
	}
}

func mustTag(t *testing.T, s string) name.Tag {
	tg, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func mustImage(t *testing.T, s string) v1.Image {
	img, err := remote.Image(mustTag(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// The SBOM dir is written by build code: links and FIFOs planted there
// are not followed or read; real SBOM files are copied.
func TestSBOMCopyTakesRegularFilesOnly(t *testing.T) {
	src, outside := t.TempDir(), t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("not an SBOM"), 0o600); err != nil {
		t.Fatal(err)
	}
	layer := filepath.Join(src, "launch", "bp", "web")
	if err := os.MkdirAll(layer, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(layer, "sbom.cdx.json"), []byte(`{"bomFormat":"CycloneDX"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(layer, "sbom.spdx.json")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(layer, "sbom.syft.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "out")
	n, err := safefs.CopyOut(src, dst, maxSBOMFile, maxSBOMTotal)
	if err != nil || n != 1 {
		t.Fatalf("copied %d: %v", n, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "launch", "bp", "web", "sbom.cdx.json")); !strings.Contains(string(b), "CycloneDX") {
		t.Fatalf("the SBOM was not copied: %q", b)
	}
	for _, f := range []string{"sbom.spdx.json", "sbom.syft.json"} {
		if _, err := os.Lstat(filepath.Join(dst, "launch", "bp", "web", f)); !os.IsNotExist(err) {
			t.Errorf("%s was copied: %v", f, err)
		}
	}
}

// Before export (split phases), an SBOM a buildpack wrote that the copy to
// --sbom-dir would refuse stops the build: nothing is pushed. A link is
// not counted (it is not copied either).
func TestSBOMBoundsAreCheckedBeforeExport(t *testing.T) {
	layers := t.TempDir()
	bp := filepath.Join(layers, "example_shell")
	if err := os.MkdirAll(bp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bp, "launch.sbom.cdx.json"), []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(bp, "web.sbom.spdx.json")); err != nil {
		t.Fatal(err)
	}
	if err := checkSBOMBounds(layers); err != nil {
		t.Fatalf("small SBOMs: %v", err)
	}
	huge := filepath.Join(bp, "web.sbom.syft.json")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(70 << 20); err != nil { // sparse: 70 MB, nothing written
		t.Fatal(err)
	}
	f.Close()
	err = checkSBOMBounds(layers)
	if exit.Code(err) != exit.Build || !strings.Contains(err.Error(), "example_shell/web.sbom.syft.json") || !strings.Contains(err.Error(), "nothing was pushed") {
		t.Fatalf("a 70 MB SBOM: %v (exit %d)", err, exit.Code(err))
	}
}
