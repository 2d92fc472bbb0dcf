package build

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/creator"
	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/registry"
)

// The skip decision and the tags' convergence, against the in-process
// registry: a skip only when the recorded inputs match and the image sits
// on the run image, every tag read again before anything moves, and a
// push since the preflight stops it.
func TestSkipIfUnchanged(t *testing.T) {
	tests := []struct {
		name string
		// v1Holds is what app:v1 holds before: "image", "other" or "".
		v1Holds string
		// afterPreflight runs between the preflight and the decision.
		afterPreflight func(t *testing.T, host string)
		fp             func(fingerprint) fingerprint
		onOtherBase    bool
		wantSkip       bool
		wantLog        string
		wantCode       int
		wantV1         string // "image", "other" or "" (absent)
	}{
		{name: "unchanged: skips, the tags hold the image", v1Holds: "image", wantSkip: true, wantV1: "image"},
		{name: "unchanged: a new tag converges", wantSkip: true, wantV1: "image"},
		{name: "unchanged: a tag on another image converges", v1Holds: "other", wantSkip: true, wantV1: "image"},
		{name: "the image tag moved after the preflight: nothing moves, rerun", v1Holds: "other",
			afterPreflight: func(t *testing.T, host string) { push(t, host+"/app:latest", randomImage(t)) },
			wantCode:       exit.Export, wantLog: "moved since inspection", wantV1: "other"},
		{name: "a tag moved onto the image after the preflight: nothing moves, rerun",
			afterPreflight: func(t *testing.T, host string) { copyTag(t, host+"/app:latest", host+"/app:v1") },
			wantCode:       exit.Export, wantLog: "moved since inspection", wantV1: "image"},
		{name: "other inputs: builds", v1Holds: "image", fp: func(f fingerprint) fingerprint { f.Inputs = "other"; return f },
			wantLog: "changed: the build env or arguments", wantV1: "image"},
		{name: "a record on another base: builds", v1Holds: "image", onOtherBase: true,
			wantLog: "its layers are not on it", wantV1: "image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
			defer srv.Close()
			host := strings.TrimPrefix(srv.URL, "http://")
			reg, err := registry.New(registry.Options{Insecure: []string{host}})
			if err != nil {
				t.Fatal(err)
			}
			run := randomImage(t)
			push(t, host+"/run:latest", run)
			rd, _ := run.Digest()
			recorded := fingerprint{App: "sha256:a", Builder: "sha256:b", RunImage: rd.String(), Inputs: "sha256:i"}
			base := run
			if tt.onOtherBase {
				base = randomImage(t)
			}
			img := imageRecording(t, base, recorded)
			push(t, host+"/app:latest", img)
			other := randomImage(t)
			switch tt.v1Holds {
			case "image":
				push(t, host+"/app:v1", img)
			case "other":
				push(t, host+"/app:v1", other)
			}
			opts := Options{Image: host + "/app:latest", Tags: []string{"v1"}, RunImage: host + "/run:latest", SkipUnchanged: true}
			refs, err := preflight(ctx, reg, reg, opts, &creator.Builder{})
			if err != nil {
				t.Fatal(err)
			}
			if tt.afterPreflight != nil {
				tt.afterPreflight(t, host)
			}
			want := recorded
			if tt.fp != nil {
				want = tt.fp(want)
			}
			var logb strings.Builder
			res, err := skipIfUnchanged(ctx, &buildPlan{refs: refs}, &workdirs{fp: want}, Deps{Registry: reg, Log: &logb}, time.Now())
			if got := exit.Code(err); err != nil && got != tt.wantCode || err == nil && tt.wantCode != 0 {
				t.Fatalf("error %v (code %d), want code %d\n%s", err, got, tt.wantCode, logb.String())
			}
			if (res != nil) != tt.wantSkip {
				t.Fatalf("skipped: %v, want %v\n%s", res != nil, tt.wantSkip, logb.String())
			}
			if msg := logb.String() + errText(err); !strings.Contains(msg, tt.wantLog) {
				t.Fatalf("%q lacks %q", msg, tt.wantLog)
			}
			id, _ := img.Digest()
			if res != nil && (res.Digest != id.String() || !res.Skipped || len(res.Tags) != 2) {
				t.Fatalf("result %+v, want the recorded image %s and both tags", res, id)
			}
			od, _ := other.Digest()
			digests := map[string]string{"image": id.String(), "other": od.String(), "": ""}
			if now := tagDigest(t, reg, host+"/app:v1"); now != digests[tt.wantV1] {
				t.Fatalf("app:v1 holds %q, want %s (%s)", now, tt.wantV1, digests[tt.wantV1])
			}
		})
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// imageRecording is an app image on base, for this host's platform, whose
// project metadata records fp.
func imageRecording(t *testing.T, base v1.Image, fp fingerprint) v1.Image {
	t.Helper()
	md, _ := json.Marshal(map[string]any{"source": map[string]any{"type": "git", "metadata": map[string]any{fingerprintKey: fp}}})
	l, err := random.Layer(64, "application/vnd.docker.image.rootfs.diff.tar.gzip")
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(base, l)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	h := registry.HostPlatform()
	cf.OS, cf.Architecture = h.OS, h.Architecture
	cf.Config.Labels = map[string]string{"io.buildpacks.project.metadata": string(md)}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func push(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err == nil {
		err = remote.Write(r, img)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func copyTag(t *testing.T, from, to string) {
	t.Helper()
	src, _ := name.ParseReference(from, name.Insecure)
	dst, _ := name.NewTag(to, name.Insecure)
	d, err := remote.Get(src)
	if err == nil {
		err = remote.Tag(dst, d)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func tagDigest(t *testing.T, reg *registry.Client, ref string) string {
	t.Helper()
	r, _ := name.ParseReference(ref, name.Insecure)
	got, err := reg.TagDigests(context.Background(), []name.Reference{r})
	if err != nil {
		t.Fatal(err)
	}
	return got[r.String()]
}
