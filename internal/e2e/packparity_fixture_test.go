package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/cipack/cipack/internal/testenv"
)

// The pack-parity world: buildpacks from outside the builder, in every
// form pack accepts them, made from pack's own acceptance-test buildpacks
// (testenv.PackTestdata). They are bash scripts, so the world's run image
// and builder image carry bash.

// packEnv is the world the pack-parity tests share, made once on first
// use under fx.Dir/pack.
type packEnv struct {
	dir          string
	runImage     string // <host>/pack/run:v1: the bash run image
	builderDir   string // the builder's /cnb: order = the example buildpacks; simple/layers and read/env beside it
	builderImage string // <host>/pack/builder:latest: the same builder on the bash run image
	bpLocal      string // <host>/pack/bp-local:1: buildpackage of local/bp (not-in-builder-buildpack)
	bpMeta       string // <host>/pack/bp-meta:1: buildpackage of local/meta-bp (composite) and local/meta-bp-dep
	bps          string // copies of pack's buildpack dirs, by their name in pack's testdata
	localTgz     string // not-in-builder-buildpack as a .tgz
	apps         string // the test apps; apps/outside is a valid buildpack beside them
	cache        string // pull mode's builder cache
}

// packBuildpacks are the pack testdata buildpacks the world copies.
var packBuildpacks = []string{"not-in-builder-buildpack", "meta-buildpack", "meta-buildpack-dependency",
	"simple-layers-buildpack", "read-env-buildpack"}

// packModes are the two ways cipack runs a build.
var packModes = []string{"in-builder", "pull"}

var packOnce struct {
	sync.Once
	w   *packEnv
	err error
}

// packWorld returns the pack-parity world, making it on first use.
func packWorld(t *testing.T) *packEnv {
	t.Helper()
	needFixture(t)
	packOnce.Do(func() { packOnce.w, packOnce.err = makePackWorld(context.Background()) })
	if packOnce.err != nil {
		t.Fatalf("make the pack-parity world: %v", packOnce.err)
	}
	return packOnce.w
}

func makePackWorld(ctx context.Context) (*packEnv, error) {
	dir := filepath.Join(fx.Dir, "pack")
	host := fx.Registry.Host
	w := &packEnv{dir: dir, runImage: host + "/pack/run:v1", builderImage: host + "/pack/builder:latest",
		bpLocal: host + "/pack/bp-local:1", bpMeta: host + "/pack/bp-meta:1",
		bps: filepath.Join(dir, "bps"), localTgz: filepath.Join(dir, "local-bp.tgz"),
		apps: filepath.Join(dir, "apps"), cache: filepath.Join(dir, "builder-cache")}
	src, err := testenv.PackTestdata(ctx)
	if err != nil {
		return nil, err
	}
	for _, name := range packBuildpacks {
		if err := testenv.CopyBuildpack(filepath.Join(src, name), filepath.Join(w.bps, name)); err != nil {
			return nil, err
		}
	}
	if err := testenv.CopyBuildpack(filepath.Join(src, "not-in-builder-buildpack"), filepath.Join(w.apps, "outside")); err != nil {
		return nil, err
	}
	if err := testenv.BuildpackTgz(w.bp("not-in-builder-buildpack"), w.localTgz); err != nil {
		return nil, err
	}

	run, err := testenv.RunImage(testenv.RunImageSpec{UID: fx.UID, GID: fx.GID, Version: "v1", Bash: true})
	if err != nil {
		return nil, err
	}
	if _, err := testenv.Push(ctx, w.runImage, run); err != nil {
		return nil, err
	}
	examples, err := testenv.ExampleBuildpacks()
	if err != nil {
		return nil, err
	}
	bps := append(append([]testenv.Buildpack{}, examples...),
		testenv.Buildpack{ID: "simple/layers", Version: "simple-layers-version", Dir: w.bp("simple-layers-buildpack")},
		testenv.Buildpack{ID: "read/env", Version: "read-env-version", Dir: w.bp("read-env-buildpack")})
	if w.builderDir, err = testenv.MakeBuilder(filepath.Join(dir, "cnb"), testenv.BuilderSpec{
		LifecycleDir: fx.LifecycleDir, RunImage: w.runImage, Buildpacks: bps}); err != nil {
		return nil, err
	}
	// The builder's order is the example buildpacks only: read/env fails
	// detection without DETECT_ENV_BUILDPACK, and the pack buildpacks are
	// what the tests pick by id.
	var order strings.Builder
	order.WriteString("[[order]]\n")
	for _, bp := range examples {
		fmt.Fprintf(&order, "[[order.group]]\nid = %q\nversion = %q\n", bp.ID, bp.Version)
	}
	if err := os.WriteFile(filepath.Join(w.builderDir, "order.toml"), []byte(order.String()), 0o644); err != nil {
		return nil, err
	}
	if _, err := fx.PushBuilder(ctx, w.builderDir, w.builderImage, run); err != nil {
		return nil, err
	}

	local, err := testenv.BuildpackageImage(testenv.Buildpack{Dir: w.bp("not-in-builder-buildpack")})
	if err != nil {
		return nil, err
	}
	if _, err := testenv.Push(ctx, w.bpLocal, local); err != nil {
		return nil, err
	}
	meta, err := testenv.BuildpackageImage(testenv.Buildpack{Dir: w.bp("meta-buildpack")},
		testenv.Buildpack{Dir: w.bp("meta-buildpack-dependency")})
	if err != nil {
		return nil, err
	}
	if _, err := testenv.Push(ctx, w.bpMeta, meta); err != nil {
		return nil, err
	}
	return w, nil
}

// bp is the world's copy of a pack testdata buildpack, by its dir name.
func (w *packEnv) bp(name string) string { return filepath.Join(w.bps, name) }

// app makes a test app under w.apps: a copy of examples/app, plus files
// (path relative to the app → content) and copies of pack buildpacks
// (path relative to the app → name in pack's testdata). It returns the
// app's directory.
func (w *packEnv) app(t *testing.T, files, bps map[string]string) string {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	app := filepath.Join(w.apps, "app-"+randSuffix())
	if err := copyDir(filepath.Join(root, "examples", "app"), app); err != nil {
		t.Fatal(err)
	}
	for rel, body := range files {
		p := filepath.Join(app, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for rel, name := range bps {
		if err := testenv.CopyBuildpack(w.bp(name), filepath.Join(app, rel)); err != nil {
			t.Fatal(err)
		}
	}
	return app
}

// variant makes a buildpack dir under the world with the given
// buildpack.toml and not-in-builder-buildpack's bin/ (it always detects).
func (w *packEnv) variant(t *testing.T, name, descriptor string) string {
	t.Helper()
	dir := filepath.Join(w.dir, "variants", name)
	if err := testenv.CopyBuildpack(filepath.Join(w.bp("not-in-builder-buildpack"), "bin"), filepath.Join(dir, "bin")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"build", "detect"} {
		if err := os.Chmod(filepath.Join(dir, "bin", f), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "buildpack.toml"), []byte(descriptor), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// image is a fresh image reference for a test and mode; repo is its
// repository.
func (w *packEnv) image(name, mode string) (image, repo string) {
	repo = fx.Registry.Host + "/packparity/" + name + "-" + mode
	return repo + ":latest", repo
}

// build runs `cipack build args...` for app in mode, with the same args
// in both: in-builder with the world's builder dir at /cnb and the app at
// /workspace; pull with --builder the world's builder image.
func (w *packEnv) build(t *testing.T, mode, app string, env []string, args ...string) run {
	t.Helper()
	switch mode {
	case "in-builder":
		return w.inBuilder(t, app, env, args...)
	case "pull":
		return w.pull(t, app, env, append([]string{"--builder", w.builderImage}, args...)...)
	}
	t.Fatalf("unknown mode %q", mode)
	return run{}
}

// inBuilder is cipackBuildIn with the world's builder dir at /cnb, a
// fresh /layers and app at /workspace.
func (w *packEnv) inBuilder(t *testing.T, app string, env []string, args ...string) run {
	t.Helper()
	layers := filepath.Join(w.dir, "layers-"+randSuffix())
	if err := os.MkdirAll(layers, 0o755); err != nil {
		t.Fatal(err)
	}
	return cipackBuildIn(t, testenv.Mounts{CNB: w.builderDir, Layers: layers, Workspace: app}, env, args...)
}

// pull runs cipack on the host as pullBuildEnv does (no /cnb, the world's
// builder cache), for app where it is and with no --builder implied: args
// or app's project.toml name the builder.
func (w *packEnv) pull(t *testing.T, app string, env []string, args ...string) run {
	t.Helper()
	argv := append([]string{"build", "--path", app, "--source-root", app, "--cnb-dir", filepath.Join(fx.Dir, "no-cnb"),
		"--builder-cache", w.cache}, args...)
	cmd := exec.Command(fx.Cipack, argv...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		t.Fatalf("run cipack: %v", err)
	}
	return run{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
}

// buildMD is the image's io.buildpacks.build.metadata label: what ran and
// the process types.
type buildMD struct {
	Buildpacks []struct {
		ID      string `json:"id"`
		Version string `json:"version"`
	} `json:"buildpacks"`
	Processes []struct {
		Type        string `json:"type"`
		BuildpackID string `json:"buildpackID"`
	} `json:"processes"`
}

func buildMetadata(t *testing.T, ref string) buildMD {
	t.Helper()
	label := testenv.MustConfig(t, ref).Config.Labels["io.buildpacks.build.metadata"]
	var md buildMD
	if err := json.Unmarshal([]byte(label), &md); err != nil {
		t.Fatalf("%s: io.buildpacks.build.metadata %q: %v", ref, label, err)
	}
	return md
}

// ran lists the buildpacks that ran, as id@version, in order.
func (md buildMD) ran() []string {
	var out []string
	for _, bp := range md.Buildpacks {
		out = append(out, bp.ID+"@"+bp.Version)
	}
	return out
}

// processes maps each process type to the buildpack that gave it.
func (md buildMD) processes() map[string]string {
	out := map[string]string{}
	for _, p := range md.Processes {
		out[p.Type] = p.BuildpackID
	}
	return out
}

// jsonRan lists the buildpacks of cipack's --output json, as id@version.
func jsonRan(t *testing.T, stdout string) []string {
	t.Helper()
	var out []string
	for _, bp := range mustJSON(t, stdout).Buildpacks {
		out = append(out, bp.ID+"@"+bp.Version)
	}
	return out
}

// unpacked writes ref's filesystem under a fresh dir and returns it.
func unpacked(t *testing.T, ref string) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := testenv.Unpack(context.Background(), ref, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// workspaceEntries lists what the image's /workspace holds at its top.
func workspaceEntries(t *testing.T, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "workspace"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}
