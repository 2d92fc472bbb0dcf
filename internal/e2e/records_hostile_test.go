package e2e

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/cipack/cipack/internal/cnb"
	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/testenv"
)

// Build code steering the credential phases through the layers dir, and
// forging the image's records (issue 33): each attack is refused, naming
// the buildpack, before the user's tag moves — in the builder and in pull
// mode.

// headOrNone is where ref points, "" when the registry does not know it.
func headOrNone(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r)
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return ""
	}
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return d.Digest.String()
}

// hostileMode runs one hostile build in either mode.
type hostileMode struct {
	name  string
	build func(t *testing.T, image string, args ...string) run
}

func hostileModes() []hostileMode {
	return []hostileMode{
		{"in-builder", func(t *testing.T, image string, args ...string) run {
			return cipackBuildIn(t, hostileWorkspace(t, "records"), nil, append([]string{"--image", image}, args...)...)
		}},
		{"pull", func(t *testing.T, image string, args ...string) run {
			return pullBuildEnv(t, filepath.Join(fx.Dir, "records-cache-"+randSuffix()), nil,
				append([]string{"--builder", hostileBuilderImage(t), "--run-image", fx.RunImage, "--image", image}, args...)...)
		}},
	}
}

// refusedNamingBuildpack wants a refusal (exit 8) that names the hostile
// buildpack and what, and no result printed.
func refusedNamingBuildpack(t *testing.T, r run, what string) {
	t.Helper()
	if r.code != exit.Build || !strings.Contains(r.stderr, "buildpack cipack-test/hostile") || !strings.Contains(r.stderr, what) {
		t.Errorf("exit %d, want %d naming buildpack cipack-test/hostile and %q\n%s", r.code, exit.Build, what, tail(r.stderr, 25))
	}
	if r.stdout != "" {
		t.Errorf("a refused build printed a result: %q", r.stdout)
	}
}

// A link planted at /layers/<buildpack> during detection: in pull mode
// the trusted restorer would write a cached layer named "analyzed"
// through it, over analyzed.toml (the first build caches that layer); in
// the builder the creator would read and write the buildpack's layers
// elsewhere. Refused before any tag moves: the tag stays on the first
// build's image (pull) or absent (in the builder).
func TestLayersLinkIsRefusedBeforeTheTagMoves(t *testing.T) {
	needFixture(t)
	for _, m := range hostileModes() {
		t.Run(m.name, func(t *testing.T) {
			image := fx.Registry.Host + "/records/link-" + m.name + ":latest"
			cache := []string{"--cache-image", fx.Registry.Host + "/records/link-" + m.name + "-cache:latest"}
			want := ""
			if m.name == "pull" {
				first := m.build(t, image, append(cache, "--output", "json", "--env", "HOSTILE=analyzedcache")...)
				if first.code != 0 || !strings.Contains(first.stderr, "hostile: wrote the cached layer analyzed") {
					t.Fatalf("first build: exit %d\n%s", first.code, tail(first.stderr, 25))
				}
				want = mustJSON(t, first.stdout).Digest
			}
			// Detection's output is not shown unless it fails: the refusal
			// naming the link is what shows it was planted.
			r := m.build(t, image, append(cache, "--env", "HOSTILE=analyzedlink")...)
			refusedNamingBuildpack(t, r, "a symbolic link at <layers>/cipack-test_hostile")
			if got := headOrNone(t, image); got != want {
				t.Errorf("the tag moved to %q (want %q) although the build was refused", got, want)
			}
			// The staging tags of both builds are gone, on a registry
			// that refuses to delete tags too (distribution).
			for _, tag := range tags(t, strings.TrimSuffix(image, ":latest")) {
				if tag != "latest" {
					t.Errorf("tag %s is left in the repository", tag)
				}
			}
		})
	}
}

// A buildpack's launch.toml label io.buildpacks.lifecycle.metadata naming
// a frozen run image (rebase would call the image up-to-date forever) is
// refused, naming the buildpack, and the tag does not move.
func TestForgedLifecycleLabelIsRefusedBeforeTheTagMoves(t *testing.T) {
	needFixture(t)
	for _, m := range hostileModes() {
		t.Run(m.name, func(t *testing.T) {
			image := fx.Registry.Host + "/records/forge-" + m.name + ":latest"
			r := m.build(t, image, "--env", "HOSTILE=forgelabel")
			if !strings.Contains(r.stderr, "hostile: launch.toml forges") {
				t.Fatalf("the buildpack did not run (exit %d)\n%s", r.code, tail(r.stderr, 25))
			}
			refusedNamingBuildpack(t, r, "io.buildpacks.lifecycle.metadata")
			if got := headOrNone(t, image); got != "" {
				t.Errorf("the tag moved to %s although the build was refused", got)
			}
		})
	}
}

// A report.toml planted as a link never fails the build after the tag
// moved: in pull mode the exporter writes the report where build code
// cannot (the link is refused before export, or ignored); in the builder
// the report is refused before any tag moves.
func TestPlantedReportLinkFailsBeforeTheTagMoves(t *testing.T) {
	needFixture(t)
	for _, m := range hostileModes() {
		t.Run(m.name, func(t *testing.T) {
			image := fx.Registry.Host + "/records/report-" + m.name + ":latest"
			r := m.build(t, image, "--output", "json", "--env", "HOSTILE=reportlink")
			if !strings.Contains(r.stderr, "hostile: report.toml is now a link") {
				t.Fatalf("the buildpack did not run (exit %d)\n%s", r.code, tail(r.stderr, 25))
			}
			got := headOrNone(t, image)
			switch {
			case r.code == 0:
				if d := mustJSON(t, r.stdout).Digest; got != d {
					t.Errorf("built %s but the tag holds %q", d, got)
				}
			case got != "":
				t.Errorf("exit %d, yet the tag moved to %s:\n%s", r.code, got, tail(r.stderr, 25))
			default:
				t.Logf("refused before any tag moved (exit %d)", r.code)
				r.mustExplainBuild(t)
			}
		})
	}
}

// mustExplainBuild wants a refusal with a reason on its last line.
func (r run) mustExplainBuild(t *testing.T) {
	t.Helper()
	if !strings.Contains(r.stderr, "cipack: error: ") || strings.Contains(r.stderr, "panic:") {
		t.Errorf("the refusal is not explained:\n%s", tail(r.stderr, 25))
	}
}

// A buildpack that rewrites run.toml (in the builder its platform dir is
// the build user's; the exporter reads run.toml again for the record)
// names the run image pinned by digest, with a mirror of its own: rebase
// would watch a name that never moves. Refused before the tag moves; in
// pull mode /platform is read-only and the record names the run image
// cipack chose.
func TestForgedRunTomlIsRefusedBeforeTheTagMoves(t *testing.T) {
	needFixture(t)
	for _, m := range hostileModes() {
		t.Run(m.name, func(t *testing.T) {
			image := fx.Registry.Host + "/records/runtoml-" + m.name + ":latest"
			r := m.build(t, image, "--run-image", fx.RunImage, "--output", "json", "--env", "HOSTILE=runtoml")
			if !strings.Contains(r.stderr, "hostile: run.toml now names") {
				if r.code != 0 || !strings.Contains(r.stderr, "hostile: could not rewrite run.toml") {
					t.Fatalf("the buildpack did not run (exit %d)\n%s", r.code, tail(r.stderr, 25))
				}
				t.Logf("run.toml could not be rewritten: built")
				return
			}
			if r.code != exit.Build || !strings.Contains(r.stderr, "runImage.image") {
				t.Errorf("exit %d, want %d naming runImage.image\n%s", r.code, exit.Build, tail(r.stderr, 25))
			}
			if got := headOrNone(t, image); got != "" {
				t.Errorf("the tag moved to %s although the record was forged", got)
			}
		})
	}
}

// A builder whose run image has mirrors: the record names the builder's
// run image and its mirrors, which the record check takes, in the
// builder and in pull mode.
func TestBuilderRunImageMirrorsPassTheRecordCheck(t *testing.T) {
	needFixture(t)
	bps, err := testenv.ExampleBuildpacks()
	if err != nil {
		t.Fatal(err)
	}
	mirror := "mirror.example/cipack-test/run:v1"
	cnbDir, err := testenv.MakeBuilder(filepath.Join(fx.Dir, "mirrors-cnb-"+randSuffix()), testenv.BuilderSpec{
		LifecycleDir: fx.LifecycleDir, RunImage: fx.RunImage, RunMirrors: []string{mirror}, Buildpacks: bps[:1]})
	if err != nil {
		t.Fatal(err)
	}
	base, err := testenv.RunImage(testenv.RunImageSpec{UID: fx.UID, GID: fx.GID, Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	builder := fx.Registry.Host + "/records/mirrors-builder:v1"
	if _, err := fx.PushBuilder(context.Background(), cnbDir, builder, base); err != nil {
		t.Fatal(err)
	}
	ws := workspace(t, "mirrors")
	ws.CNB = cnbDir
	for mode, build := range map[string]func(image string) run{
		"in-builder": func(image string) run { return cipackBuildIn(t, ws, nil, "--image", image) },
		"pull": func(image string) run {
			return pullBuildEnv(t, filepath.Join(fx.Dir, "mirrors-cache-"+randSuffix()), nil, "--builder", builder, "--image", image)
		},
	} {
		image := fx.Registry.Host + "/records/mirrors-" + mode + ":latest"
		if r := build(image); r.code != 0 {
			t.Errorf("%s: exit %d\n%s", mode, r.code, tail(r.stderr, 25))
			continue
		}
		cf, err := testenv.MustPull(t, image).ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if md := cf.Config.Labels[cnb.LifecycleMetadataLabel]; !strings.Contains(md, mirror) {
			t.Errorf("%s: the record names no mirror: %s", mode, md)
		}
	}
}

// A buildpack that takes itself out of the build metadata (a detached
// process rewrites config/metadata.toml once the lifecycle wrote it):
// rebase would never call its image's builder moved when the builder
// drops or patches that buildpack. Refused before the tag moves.
func TestBuildpackDroppedFromTheRecordIsRefused(t *testing.T) {
	needFixture(t)
	for _, m := range hostileModes() {
		t.Run(m.name, func(t *testing.T) {
			image := fx.Registry.Host + "/records/dropself-" + m.name + ":latest"
			r := m.build(t, image, "--output", "json", "--env", "HOSTILE=dropself")
			if !strings.Contains(r.stderr, "hostile: left a process") {
				t.Fatalf("the buildpack did not run (exit %d)\n%s", r.code, tail(r.stderr, 25))
			}
			if r.code == 0 {
				cf, err := testenv.MustPull(t, image).ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				if md := cf.Config.Labels[cnb.BuildMetadataLabel]; !strings.Contains(md, "cipack-test/hostile") {
					t.Errorf("built, and the record leaves the buildpack out: %s", md)
				}
				return
			}
			refusedNamingBuildpackRecord(t, r)
			t.Logf("refused: exit %d", r.code)
			if got := headOrNone(t, image); got != "" {
				t.Errorf("exit %d, yet the tag moved to %s", r.code, got)
			}
		})
	}
}

func refusedNamingBuildpackRecord(t *testing.T, r run) {
	t.Helper()
	if r.code != exit.Build || !strings.Contains(r.stderr, cnb.BuildMetadataLabel) || !strings.Contains(r.stderr, "taken out") {
		t.Errorf("exit %d, want %d naming %s\n%s", r.code, exit.Build, cnb.BuildMetadataLabel, tail(r.stderr, 25))
	}
}

// A buildpack "." added to group.toml has the layers dir itself as its
// layers dir: <layers>/launch.toml's labels (io.buildpacks.rebasable =
// false: rebase would skip the image forever) must be refused as any
// buildpack's are.
func TestDotBuildpackLabelsAreRefused(t *testing.T) {
	needFixture(t)
	for _, m := range hostileModes() {
		t.Run(m.name, func(t *testing.T) {
			image := fx.Registry.Host + "/records/dotgroup-" + m.name + ":latest"
			r := m.build(t, image, "--output", "json", "--env", "HOSTILE=dotgroup")
			if !strings.Contains(r.stderr, "hostile: group.toml names buildpack .") {
				t.Fatalf("the buildpack did not run (exit %d)\n%s", r.code, tail(r.stderr, 25))
			}
			if r.code == 0 {
				cf, err := testenv.MustPull(t, image).ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				if v, ok := cf.Config.Labels[cnb.RebasableLabel]; ok && v == "false" {
					t.Errorf("built, and the image says it is not rebasable")
				}
				return
			}
			t.Logf("refused: exit %d\n%s", r.code, tail(r.stderr, 3))
			if got := headOrNone(t, image); got != "" {
				t.Errorf("exit %d, yet the tag moved to %s", r.code, got)
			}
		})
	}
}
