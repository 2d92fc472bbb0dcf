package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/testenv"
)

// A restored --cache-dir (actions/cache, a shared volume) is someone
// else's file: the trusted restorer extracts its layers at the paths they
// name, and the analyzed.toml dir is writable in that phase. A poisoned
// cache layer carrying /analyzed/analyzed.toml named another repository's
// image as the run image; the credentialed exporter then copied that
// image's layers into the user's repository. cipack refuses an
// analyzed.toml that names other images than the ones it chose, before
// export.
func TestPoisonedCacheCannotChooseTheImagesTheExporterReads(t *testing.T) {
	needFixture(t)
	builder := hostileBuilderImage(t)
	cacheDir := filepath.Join(fx.Dir, "poison-cnb-cache-"+randSuffix())
	image := fx.Registry.Host + "/records/poison:latest"
	args := []string{"--builder", builder, "--run-image", fx.RunImage, "--image", image, "--cache-dir", cacheDir, "--output", "json"}
	blobs := filepath.Join(fx.Dir, "poison-blobs-"+randSuffix())
	first := pullBuildEnv(t, blobs, nil, append(args, "--env", "HOSTILE=analyzedcache")...)
	if first.code != 0 || !strings.Contains(first.stderr, "hostile: wrote the cached layer analyzed") {
		t.Fatalf("first build: exit %d\n%s", first.code, tail(first.stderr, 25))
	}
	want := mustJSON(t, first.stdout).Digest

	secretLayer, err := testenv.LayerFromFiles([]testenv.TarFile{{Name: "TOPSECRET.txt", Mode: 0o644, Body: []byte("private " + randSuffix())}})
	if err != nil {
		t.Fatal(err)
	}
	secretImg, err := mutate.AppendLayers(testenv.MustPull(t, fx.RunImage), secretLayer)
	if err != nil {
		t.Fatal(err)
	}
	secretDigest, _ := secretImg.Digest()
	if _, err := testenv.Push(context.Background(), fx.Registry.Host+"/private/poison-secret:v1", secretImg); err != nil {
		t.Fatal(err)
	}
	secret := fx.Registry.Host + "/private/poison-secret@" + secretDigest.String()
	poisonCache(t, cacheDir, fmt.Sprintf("[run-image]\n  reference = %q\n  image = %q\n", secret, fx.RunImage))

	r := pullBuildEnv(t, blobs, nil, args...)
	layerDigest, _ := secretLayer.Digest()
	repo, _ := name.NewRepository(fx.Registry.Host + "/records/poison")
	if l, err := remote.Layer(repo.Digest(layerDigest.String())); err == nil {
		if rc, err := l.Compressed(); err == nil {
			rc.Close()
			t.Errorf("the user's repository holds the private image's layer (exit %d)\n%s", r.code, tail(r.stderr, 25))
		}
	}
	if got := headOrNone(t, image); got != want {
		t.Errorf("the tag moved to %s (want %s)", got, want)
	}
	if r.code == 0 || !strings.Contains(r.stderr, "analyzed.toml") {
		t.Errorf("exit %d, want a refusal naming analyzed.toml\n%s", r.code, tail(r.stderr, 25))
	}
}

// poisonCache adds analyzed (as /analyzed/analyzed.toml) to the hostile
// buildpack's cached layer "analyzed" in a volume cache, and fixes the
// cache's metadata to the new layer's digest.
func poisonCache(t *testing.T, dir, analyzed string) {
	t.Helper()
	committed := filepath.Join(dir, "committed")
	mdPath := filepath.Join(committed, "io.buildpacks.lifecycle.cache.metadata")
	raw, err := os.ReadFile(mdPath)
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	if err := json.Unmarshal(raw, &md); err != nil {
		t.Fatal(err)
	}
	var layer map[string]any
	for _, bp := range md["buildpacks"].([]any) {
		if b := bp.(map[string]any); b["key"] == "cipack-test/hostile" {
			layer = b["layers"].(map[string]any)["analyzed"].(map[string]any)
		}
	}
	if layer == nil {
		t.Fatalf("no cached layer analyzed in %s", raw)
	}
	old, err := os.ReadFile(filepath.Join(committed, layer["sha"].(string)+".tar"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tr := tar.NewReader(bytes.NewReader(old))
	prefix := ""
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(hdr.Name, "/") {
			prefix = "/"
		}
		body, _ := io.ReadAll(tr)
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write(body)
	}
	hdr := &tar.Header{Name: prefix + "analyzed/analyzed.toml", Mode: 0o644, Size: int64(len(analyzed)), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write([]byte(analyzed))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	sha := fmt.Sprintf("sha256:%x", sha256.Sum256(buf.Bytes()))
	if err := os.WriteFile(filepath.Join(committed, sha+".tar"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	layer["sha"] = sha
	raw, _ = json.Marshal(md)
	if err := os.WriteFile(mdPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}
