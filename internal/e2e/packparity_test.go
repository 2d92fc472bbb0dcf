package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/testenv"
)

// Pack parity (issue "pack parity"): buildpacks from outside the builder,
// in every form pack accepts, given the same way in both modes. The world
// (packWorld) is made of pack's own acceptance-test buildpacks.

const (
	localBP   = "local/bp@local-bp-version"
	metaDepBP = "local/meta-bp-dep@local-meta-bp-version"
	simpleBP  = "simple/layers@simple-layers-version"
	readEnvBP = "read/env@read-env-version"
	shellBP   = "cipack-examples/shell@0.0.1"
	cacheBP   = "cipack-examples/cache@0.0.1"
)

// packWant is what a successful build must show.
type packWant struct {
	ran   []string          // the buildpacks that ran, in order (the label and --output json)
	procs map[string]string // process type → the buildpack that gave it (those listed)
	ws    []string          // entries the image's /workspace holds
	notWS []string          // entries it must not hold
}

// checkBuild checks a build run with --image image --output json against
// want, and returns the image's unpacked filesystem ("" when want needs
// none).
func checkBuild(t *testing.T, r run, image string, want packWant) string {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, want 0\n%s", r.code, r.stderr)
	}
	md := buildMetadata(t, image)
	if got := md.ran(); !slices.Equal(got, want.ran) {
		t.Errorf("io.buildpacks.build.metadata lists %v, want %v", got, want.ran)
	}
	if got := jsonRan(t, r.stdout); !slices.Equal(got, want.ran) {
		t.Errorf("--output json lists %v, want %v", got, want.ran)
	}
	procs := md.processes()
	for typ, bp := range want.procs {
		if procs[typ] != bp {
			t.Errorf("process %q from %q, want from %q (processes %v)", typ, procs[typ], bp, procs)
		}
	}
	if len(want.ws) == 0 && len(want.notWS) == 0 {
		return ""
	}
	root := unpacked(t, image)
	entries := workspaceEntries(t, root)
	for _, e := range want.ws {
		if !slices.Contains(entries, e) {
			t.Errorf("/workspace lacks %s: %v", e, entries)
		}
	}
	for _, e := range want.notWS {
		if slices.Contains(entries, e) {
			t.Errorf("/workspace holds %s: %v", e, entries)
		}
	}
	return root
}

// project is a schema-0.2 project.toml with body after its header.
func project(body string) map[string]string {
	return map[string]string{"project.toml": "[_]\nschema-version = \"0.2\"\n\n" + body}
}

// The CNB samples' shape: a schema-0.1 project.toml whose buildpack is a
// directory inside the app. That buildpack alone runs.
func TestPackParitySamplesProjectURI(t *testing.T) {
	w := packWorld(t)
	for _, mode := range packModes {
		t.Run(mode, func(t *testing.T) {
			app := w.app(t, map[string]string{"project.toml": "[[build.buildpacks]]\nuri = \"local-bp/\"\n"},
				map[string]string{"local-bp": "not-in-builder-buildpack"})
			image, _ := w.image("samples", mode)
			r := w.build(t, mode, app, nil, "--image", image, "--output", "json")
			checkBuild(t, r, image, packWant{ran: []string{localBP}, ws: []string{"app.sh"}})
			if !strings.Contains(r.stderr, "---> Build: Local Buildpack") {
				t.Errorf("local/bp's build output is not in the log:\n%s", r.stderr)
			}
		})
	}
}

// --buildpack in each of pack's forms; the group is the flags, in order;
// --pre/--post-buildpack wrap the builder's order only when no group is
// given.
func TestPackParityBuildpackFlag(t *testing.T) {
	w := packWorld(t)
	simpleDir := w.bp("simple-layers-buildpack")
	cases := []struct {
		name string
		args []string
		want packWant
	}{
		{"dir", []string{"--buildpack", simpleDir},
			packWant{ran: []string{simpleBP}, procs: map[string]string{"web": "simple/layers", "hello": "simple/layers"}, ws: []string{"app.sh", "launch-deps", "cached-deps"}}},
		{"dir-then-builder-id", []string{"--buildpack", simpleDir, "--buildpack", shellBP},
			packWant{ran: []string{simpleBP, shellBP}, procs: map[string]string{"web": "cipack-examples/shell", "hello": "simple/layers"}}},
		{"buildpackage-docker", []string{"--buildpack", "docker://" + w.bpLocal}, packWant{ran: []string{localBP}}},
		{"buildpackage-ref", []string{"--buildpack", w.bpLocal}, packWant{ran: []string{localBP}}},
		{"composite-image", []string{"--buildpack", "docker://" + w.bpMeta}, packWant{ran: []string{metaDepBP}}},
		{"composite-dir", []string{"--buildpack", w.bp("meta-buildpack")}, packWant{ran: []string{metaDepBP}}},
		{"tgz", []string{"--buildpack", w.localTgz}, packWant{ran: []string{localBP}}},
		{"urn-builder-id", []string{"--buildpack", "urn:cnb:builder:simple/layers"}, packWant{ran: []string{simpleBP}}},
		{"id-at-version", []string{"--buildpack", simpleBP}, packWant{ran: []string{simpleBP}}},
		{"builder-order", []string{"--buildpack", w.bp("not-in-builder-buildpack"), "--buildpack", "urn:cnb:builder"},
			packWant{ran: []string{localBP, shellBP, cacheBP}}},
		{"pre-post", []string{"--pre-buildpack", simpleBP, "--post-buildpack", "docker://" + w.bpLocal},
			packWant{ran: []string{simpleBP, shellBP, cacheBP, localBP}}},
		{"pre-post-ignored-with-group", []string{"--buildpack", simpleDir, "--pre-buildpack", "docker://" + w.bpLocal, "--post-buildpack", w.localTgz},
			packWant{ran: []string{simpleBP}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range packModes {
				t.Run(mode, func(t *testing.T) {
					app := w.app(t, nil, nil)
					image, _ := w.image("flag-"+tc.name, mode)
					r := w.build(t, mode, app, nil, append([]string{"--image", image, "--output", "json"}, tc.args...)...)
					checkBuild(t, r, image, tc.want)
				})
			}
		})
	}
}

// project.toml schema 0.2: pre and post groups around the builder's order
// (a builder id and a directory inside the app), exclude with a negation;
// an inline script buildpack.
func TestPackParityProjectGroups(t *testing.T) {
	w := packWorld(t)
	t.Run("pre-post-exclude", func(t *testing.T) {
		for _, mode := range packModes {
			t.Run(mode, func(t *testing.T) {
				files := project(`[io.buildpacks]
exclude = ["*.log", "!keep.log"]

[[io.buildpacks.pre.group]]
id = "simple/layers"
version = "simple-layers-version"

[[io.buildpacks.post.group]]
uri = "local-bp"
`)
				files["keep.log"], files["drop.log"] = "kept\n", "dropped\n"
				app := w.app(t, files, map[string]string{"local-bp": "not-in-builder-buildpack"})
				image, _ := w.image("project-prepost", mode)
				r := w.build(t, mode, app, nil, "--image", image, "--output", "json")
				checkBuild(t, r, image, packWant{ran: []string{simpleBP, shellBP, cacheBP, localBP},
					procs: map[string]string{"web": "cipack-examples/shell", "hello": "simple/layers"},
					ws:    []string{"app.sh", "keep.log"}, notWS: []string{"drop.log"}})
				if _, err := os.Stat(filepath.Join(app, "drop.log")); err != nil {
					t.Errorf("the checkout lost drop.log: %v", err)
				}
			})
		}
	})
	t.Run("inline-script", func(t *testing.T) {
		for _, mode := range packModes {
			t.Run(mode, func(t *testing.T) {
				app := w.app(t, project(`[[io.buildpacks.group]]
id = "me/inline"

[io.buildpacks.group.script]
api = "0.10"
inline = "echo inline-ran > $CNB_LAYERS_DIR/../x || true"
shell = "/bin/sh"

[[io.buildpacks.group]]
id = "cipack-examples/shell"
version = "0.0.1"
`), nil)
				image, _ := w.image("project-inline", mode)
				r := w.build(t, mode, app, nil, "--image", image, "--output", "json")
				if r.code != 0 {
					t.Fatalf("exit %d, want 0\n%s", r.code, r.stderr)
				}
				var ids []string
				for _, bp := range buildMetadata(t, image).Buildpacks {
					ids = append(ids, bp.ID)
				}
				if want := []string{"me/inline", "cipack-examples/shell"}; !slices.Equal(ids, want) {
					t.Errorf("ran %v, want %v", ids, want)
				}
			})
		}
	})
}

// project.toml schema 0.3: a build env var limited by exec-env reaches
// the buildpacks only in the build of that exec-env (default
// "production"; --exec-env picks another). read/env writes the layer
// env1-launch-layer from ENV1_CONTENTS and env2-launch-layer from
// ENV2_CONTENTS, and links each into the app dir.
func TestPackParityExecEnv(t *testing.T) {
	w := packWorld(t)
	files := map[string]string{"project.toml": `[_]
schema-version = "0.3"

[[io.buildpacks.group]]
id = "read/env"
version = "read-env-version"

[[io.buildpacks.build.env]]
name = "DETECT_ENV_BUILDPACK"
value = "1"

[[io.buildpacks.build.env]]
name = "ENV1_CONTENTS"
value = "only-in-test"
exec-env = ["test"]

[[io.buildpacks.build.env]]
name = "ENV2_CONTENTS"
value = "only-in-production"
exec-env = ["production"]
`}
	for _, mode := range packModes {
		t.Run(mode, func(t *testing.T) {
			for _, tc := range []struct {
				name     string
				args     []string
				has, not string // read/env's layer made, and not made
				value    string
			}{
				{"default", nil, "env2", "env1", "only-in-production"},
				{"test", []string{"--exec-env", "test"}, "env1", "env2", "only-in-test"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					app := w.app(t, files, nil)
					image, _ := w.image("exec-env-"+tc.name, mode)
					r := w.build(t, mode, app, nil, append([]string{"--image", image, "--output", "json"}, tc.args...)...)
					root := checkBuild(t, r, image, packWant{ran: []string{readEnvBP},
						ws: []string{tc.has + "-launch-deps"}, notWS: []string{tc.not + "-launch-deps"}})
					if !strings.Contains(r.stderr, "making "+tc.has+" layer") || strings.Contains(r.stderr, "making "+tc.not+" layer") {
						t.Errorf("read/env should make the %s layer only:\n%s", tc.has, r.stderr)
					}
					layers := filepath.Join(root, "layers", "read_env")
					b, err := os.ReadFile(filepath.Join(layers, tc.has+"-launch-layer", tc.has+"-launch-dep"))
					if err != nil || string(b) != tc.value+"\n" {
						t.Errorf("%s-launch-dep holds %q (%v), want %q", tc.has, b, err, tc.value)
					}
					if _, err := os.Stat(filepath.Join(layers, tc.not+"-launch-layer")); err == nil {
						t.Errorf("the image has %s-launch-layer: %s reached read/env", tc.not, strings.ToUpper(tc.not)+"_CONTENTS")
					}
				})
			}
		})
	}
}

// Pull mode with no --builder takes project.toml's builder; --builder
// wins over it.
func TestPackParityPullTakesProjectBuilder(t *testing.T) {
	w := packWorld(t)
	for _, tc := range []struct {
		name, builder string
		args          []string
	}{
		{"from-project", w.builderImage, nil},
		{"flag-wins", fx.Registry.Host + "/pack/no-such-builder:1", []string{"--builder", w.builderImage}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := w.app(t, project(fmt.Sprintf("[io.buildpacks]\nbuilder = %q\n", tc.builder)), nil)
			image, _ := w.image("project-builder-"+tc.name, "pull")
			r := w.pull(t, app, nil, append([]string{"--image", image, "--output", "json"}, tc.args...)...)
			checkBuild(t, r, image, packWant{ran: []string{shellBP, cacheBP}})
			if got := recordedRunImage(t, image); got != w.runImage {
				t.Errorf("run image %q, want the world builder's %s", got, w.runImage)
			}
		})
	}
}

// What cipack refuses before building: exit 2 naming the buildpack (or
// the uri), nothing pushed.
func TestPackParityRefusals(t *testing.T) {
	w := packWorld(t)
	newAPI := w.variant(t, "new-api", "api = \"9.9\"\n\n[buildpack]\nid = \"bad/new-api\"\nversion = \"1.0.0\"\n")
	oldAPI := w.variant(t, "old-api", "api = \"0.1\"\n\n[buildpack]\nid = \"bad/old-api\"\nversion = \"1.0.0\"\n")
	arm := w.variant(t, "arm64", "api = \"0.10\"\n\n[buildpack]\nid = \"bad/arm64\"\nversion = \"1.0.0\"\n\n[[targets]]\nos = \"linux\"\narch = \"arm64\"\n")
	cases := []struct {
		name  string
		files map[string]string
		link  string // a symlink "sneaky" in the app pointing there
		args  []string
		want  string // stderr names it
	}{
		{"version-not-valid", project("[[io.buildpacks.group]]\nid = \"simple/layers\"\nversion = \"../../x\"\n"), "", nil, "simple/layers"},
		{"api-too-new", nil, "", []string{"--buildpack", newAPI}, "bad/new-api"},
		{"api-too-old", nil, "", []string{"--buildpack", oldAPI}, "bad/old-api"},
		{"targets-exclude-run-image", nil, "", []string{"--buildpack", arm}, "bad/arm64"},
		{"not-in-builder", nil, "", []string{"--buildpack", "nope/missing@1.0.0"}, "nope/missing"},
		{"missing-dir", nil, "", []string{"--buildpack", filepath.Join(w.dir, "no-such-buildpack")}, "no-such-buildpack"},
		{"uri-absolute", project("[[io.buildpacks.group]]\nuri = \"/etc\"\n"), "", nil, "/etc"},
		{"uri-escaping", project("[[io.buildpacks.group]]\nuri = \"../outside\"\n"), "", nil, "../outside"},
		{"uri-absolute-pre", project("[[io.buildpacks.pre.group]]\nuri = \"/etc\"\n"), "", nil, "/etc"},
		{"uri-symlink-escaping", project("[[io.buildpacks.group]]\nuri = \"sneaky\"\n"), "../outside", nil, "sneaky"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range packModes {
				t.Run(mode, func(t *testing.T) {
					app := w.app(t, tc.files, nil)
					if tc.link != "" {
						if err := os.Symlink(tc.link, filepath.Join(app, "sneaky")); err != nil {
							t.Fatal(err)
						}
					}
					image, repo := w.image("refused-"+tc.name, mode)
					r := w.build(t, mode, app, nil, append([]string{"--image", image}, tc.args...)...)
					if r.code != exit.Usage || !strings.Contains(r.stderr, tc.want) {
						t.Errorf("exit %d, want %d naming %q\n%s", r.code, exit.Usage, tc.want, r.stderr)
					}
					if got := tags(t, repo); len(got) != 0 {
						t.Errorf("a refused build pushed %v", got)
					}
				})
			}
		})
	}
}

// In-builder builds with buildpacks from the app, a directory, an image
// and an archive leave the builder dir, the checkout and the buildpack
// sources as they were.
func TestPackParityInBuilderLeavesBuilderAndCheckoutAlone(t *testing.T) {
	w := packWorld(t)
	app := w.app(t, project("[[io.buildpacks.group]]\nuri = \"local-bp\"\n\n[[io.buildpacks.group]]\nid = \"simple/layers\"\n"),
		map[string]string{"local-bp": "not-in-builder-buildpack"})
	dirs := []string{w.builderDir, app, w.bps}
	var before []string
	for _, d := range dirs {
		before = append(before, testenv.TreeState(t, d))
	}
	image, _ := w.image("untouched", "in-builder")
	r := w.inBuilder(t, app, nil, "--image", image, "--output", "json")
	checkBuild(t, r, image, packWant{ran: []string{localBP, simpleBP}})
	r = w.inBuilder(t, app, nil, "--image", image, "--output", "json",
		"--buildpack", w.bp("simple-layers-buildpack"), "--buildpack", "docker://"+w.bpMeta, "--buildpack", w.localTgz)
	checkBuild(t, r, image, packWant{ran: []string{simpleBP, metaDepBP, localBP}})
	for i, d := range dirs {
		if after := testenv.TreeState(t, d); after != before[i] {
			t.Errorf("%s changed:\nbefore:\n%s\nafter:\n%s", d, before[i], after)
		}
	}
}
