package build

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/buildpacks/lifecycle/platform/files"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cipack/cipack/internal/cnb"
	"github.com/cipack/cipack/internal/exit"
)

func hash(c byte) v1.Hash { return v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(string(c), 64)} }

// The lifecycle record must name the chosen run image, its top layer, a
// digest of it, and the image must sit on its layers; a buildpack label
// that replaced it (a frozen run image) is refused.
func TestCheckLifecycleRecord(t *testing.T) {
	run := runBase{cf: &v1.ConfigFile{RootFS: v1.RootFS{DiffIDs: []v1.Hash{hash('a'), hash('b')}}}, digests: []string{"sha256:" + strings.Repeat("9", 64)}}
	chosen, _ := name.ParseReference("127.0.0.1:5000/run:v1")
	app := &v1.ConfigFile{RootFS: v1.RootFS{DiffIDs: []v1.Hash{hash('a'), hash('b'), hash('c')}}}
	label := func(top, ref, image string) map[string]string {
		raw, _ := json.Marshal(map[string]any{"runImage": map[string]string{"topLayer": top, "reference": ref, "image": image}})
		return map[string]string{cnb.LifecycleMetadataLabel: string(raw)}
	}
	good := "127.0.0.1:5000/run@" + run.digests[0]
	builder := files.RunImageForExport{Image: "127.0.0.1:5000/run:v1", Mirrors: []string{"mirror.example/run:v1"}}
	if err := checkLifecycleRecord(label(hash('b').String(), good, "127.0.0.1:5000/run:v1"), run, app, chosen, builder); err != nil {
		t.Fatalf("the lifecycle's own record: %v", err)
	}
	for what, c := range map[string]struct {
		labels map[string]string
		cf     *v1.ConfigFile
	}{
		"frozen top layer":       {label(hash('0').String(), good, ""), app},
		"other run image":        {label(hash('b').String(), "frozen.example/run@sha256:"+strings.Repeat("0", 64), ""), app},
		"other image name":       {label(hash('b').String(), good, "frozen.example/run"), app},
		"not on the run image":   {label(hash('b').String(), good, ""), &v1.ConfigFile{RootFS: v1.RootFS{DiffIDs: []v1.Hash{hash('c'), hash('b')}}}},
		"missing":                {map[string]string{}, app},
		"not JSON":               {map[string]string{cnb.LifecycleMetadataLabel: "{"}, app},
		"reference not a digest": {label(hash('b').String(), "127.0.0.1:5000/run:v1", ""), app},
	} {
		if err := checkLifecycleRecord(c.labels, run, c.cf, chosen, builder); exit.Code(err) != exit.Build {
			t.Errorf("%s: got %v, want a refusal (exit %d)", what, err, exit.Build)
		}
	}
}

// The name and mirrors a rebase watches must be the run image cipack
// chose and the builder's mirrors of it: a buildpack that rewrote run.toml
// (the exporter reads it again) would record the run image pinned by
// digest, another tag, or a mirror of its own, and rebase would watch a
// name that never moves.
func TestCheckLifecycleRecordName(t *testing.T) {
	run := runBase{cf: &v1.ConfigFile{RootFS: v1.RootFS{DiffIDs: []v1.Hash{hash('a')}}}, digests: []string{"sha256:" + strings.Repeat("9", 64)}}
	app := &v1.ConfigFile{RootFS: v1.RootFS{DiffIDs: []v1.Hash{hash('a'), hash('c')}}}
	good := "127.0.0.1:5000/run@" + run.digests[0]
	label := func(image string, mirrors []string, stack *files.RunImageForExport) map[string]string {
		md := map[string]any{"runImage": map[string]any{"topLayer": hash('a').String(), "reference": good, "image": image, "mirrors": mirrors}}
		if stack != nil {
			md["stack"] = map[string]any{"runImage": stack}
		}
		raw, _ := json.Marshal(md)
		return map[string]string{cnb.LifecycleMetadataLabel: string(raw)}
	}
	builder := files.RunImageForExport{Image: "127.0.0.1:5000/run:v1", Mirrors: []string{"mirror.example/run:v1"}}
	chosen, _ := name.ParseReference("127.0.0.1:5000/run:v1")
	user, _ := name.ParseReference("127.0.0.1:5000/mine:v1")
	mirrors := []string{"mirror.example/run:v1"}
	for what, c := range map[string]struct {
		labels map[string]string
		chosen name.Reference
	}{
		"the builder's run image and mirror":  {label("127.0.0.1:5000/run:v1", mirrors, &files.RunImageForExport{Image: "127.0.0.1:5000/run:v1", Mirrors: mirrors}), chosen},
		"the user's run image, no mirror":     {label("127.0.0.1:5000/mine:v1", nil, nil), user},
		"the user's run image, default tag":   {label("127.0.0.1:5000/run", nil, nil), mustRef(t, "127.0.0.1:5000/run:latest")},
		"the user's run image pinned by them": {label(good, nil, nil), mustRef(t, good)},
	} {
		if err := checkLifecycleRecord(c.labels, run, app, c.chosen, builder); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	for what, c := range map[string]struct {
		labels map[string]string
		chosen name.Reference
		says   string
	}{
		"pinned by digest":                  {label(good, mirrors, nil), chosen, "runImage.image"},
		"another tag":                       {label("127.0.0.1:5000/run:v0", nil, nil), chosen, "runImage.image"},
		"no name":                           {label("", nil, nil), chosen, "runImage.image"},
		"a mirror of its own":               {label("127.0.0.1:5000/run:v1", []string{"frozen.example/run"}, nil), chosen, "frozen.example/run"},
		"the builder's mirror, --run-image": {label("127.0.0.1:5000/mine:v1", mirrors, nil), user, "mirror.example/run:v1"},
		"another stack record":              {label("127.0.0.1:5000/run:v1", nil, &files.RunImageForExport{Image: "frozen.example/run"}), chosen, "stack.runImage"},
	} {
		err := checkLifecycleRecord(c.labels, run, app, c.chosen, builder)
		if exit.Code(err) != exit.Build || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: got %v, want a refusal (exit %d) naming %q", what, err, exit.Build, c.says)
		}
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The project record must be what cipack wrote, through the lifecycle's
// TOML-to-JSON path; only the lifecycle's and the run image's own
// io.buildpacks. labels may be on the image.
func TestCheckProjectRecordAndOwnLabels(t *testing.T) {
	written := []byte("[source]\n  type = \"git\"\n  [source.version]\n    commit = \"abc\"\n  [source.metadata]\n    repository = \"r\"\n")
	ok := map[string]string{cnb.ProjectMetadataLabel: `{"source":{"type":"git","version":{"commit":"abc"},"metadata":{"repository":"r"}}}`}
	if err := checkProjectRecord(ok, written); err != nil {
		t.Fatalf("the recorded source: %v", err)
	}
	forgedSrc := map[string]string{cnb.ProjectMetadataLabel: `{"source":{"type":"git","version":{"commit":"f00"},"metadata":{"repository":"r"}}}`}
	if err := checkProjectRecord(forgedSrc, written); exit.Code(err) != exit.Build {
		t.Errorf("another commit: got %v", err)
	}
	run := map[string]string{"io.buildpacks.base.id": "x"}
	if err := checkOwnLabels(map[string]string{"io.buildpacks.base.id": "x", cnb.RebasableLabel: "true", "org.example": "y"}, run); err != nil {
		t.Errorf("own and inherited labels: %v", err)
	}
	for _, l := range []map[string]string{{"io.buildpacks.base.id": "changed"}, {"io.buildpacks.anything": "x"}} {
		if err := checkOwnLabels(l, run); exit.Code(err) != exit.Build {
			t.Errorf("%v: got %v, want a refusal", l, err)
		}
	}
}
