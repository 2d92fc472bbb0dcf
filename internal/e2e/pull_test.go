package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/testenv"
)

// pullBuild runs `cipack build --builder` on the host: no /cnb, no
// sandbox made by the test; cipack pulls the builder and sandboxes the
// lifecycle itself. It returns the run and its wall time.
func pullBuild(t testing.TB, cache string, args ...string) (run, time.Duration) {
	start := time.Now()
	r := pullBuildEnv(t, cache, nil, args...)
	return r, time.Since(start)
}

func copyDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("cp", "-a", src+"/.", dst+"/").CombinedOutput(); err != nil {
		return fmt.Errorf("cp -a %s %s: %w\n%s", src, dst, err, out)
	}
	return nil
}

func TestPullModeBuildsFromTheBuilderImage(t *testing.T) {
	needFixture(t)
	cache := filepath.Join(fx.Dir, "builder-cache")
	image := fx.Registry.Host + "/pull/app:latest"
	r, cold := pullBuild(t, cache, "--builder", fx.BuilderImage, "--image", image, "--env", "GREETING=pulled", "--process-type", "web")
	if r.code != 0 {
		t.Fatalf("pull-mode build: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "unpacked") {
		t.Fatalf("no unpack line:\n%s", r.stderr)
	}
	cf := testenv.MustConfig(t, image)
	if cf.Config.WorkingDir != "/workspace" {
		t.Fatalf("WORKDIR %q, want /workspace whatever the checkout path", cf.Config.WorkingDir)
	}
	out, err := testenv.RunImageProcess(context.Background(), strings.TrimSpace(r.stdout), "web", filepath.Join(fx.Dir, "pull-run-"+randSuffix()))
	if err != nil || !strings.Contains(out, "GREETING=pulled") {
		t.Fatalf("the image printed %q (%v)", out, err)
	}
	r2, warm := pullBuild(t, cache, "--builder", fx.BuilderImage, "--image", image)
	if r2.code != 0 || !strings.Contains(r2.stderr, " 0 unpacked") {
		t.Fatalf("second build should reuse every layer: exit %d\n%s", r2.code, r2.stderr)
	}
	t.Logf("pull mode: cold %s, warm %s", cold.Round(time.Millisecond), warm.Round(time.Millisecond))
}

// For the same inputs and platform API, pull mode gives the digest that
// in-builder mode gives (a builder whose buildpacks are deterministic: the
// shell buildpack alone). A new builder version unpacks only the layers
// that changed.
func TestPullModeMatchesInBuilderAndUnpacksOnlyChangedLayers(t *testing.T) {
	needFixture(t)
	bps, err := testenv.ExampleBuildpacks()
	if err != nil {
		t.Fatal(err)
	}
	shellOnly := []testenv.Buildpack{bps[0]}
	cnb, err := testenv.MakeBuilder(filepath.Join(fx.Dir, "shell-cnb"), testenv.BuilderSpec{LifecycleDir: fx.LifecycleDir, RunImage: fx.RunImage, Buildpacks: shellOnly})
	if err != nil {
		t.Fatal(err)
	}
	base, err := testenv.RunImage(testenv.RunImageSpec{UID: fx.UID, GID: fx.GID, Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	builderRef := fx.Registry.Host + "/pull/shell-builder:v1"
	if _, err := fx.PushBuilder(context.Background(), cnb, builderRef, base); err != nil {
		t.Fatal(err)
	}
	args := []string{"--env", "GREETING=same", "--platform-api", "0.15", "--process-type", "web"}
	m := workspace(t, "pull-same")
	m.CNB = cnb
	in := cipackBuildIn(t, m, nil, append([]string{"--image", fx.Registry.Host + "/pull/same-in-builder:latest", "--output", "json"}, args...)...)
	if in.code != 0 {
		t.Fatalf("in-builder: exit %d\n%s", in.code, in.stderr)
	}
	cache := filepath.Join(fx.Dir, "builder-cache-"+randSuffix())
	out, _ := pullBuild(t, cache, append([]string{"--builder", builderRef, "--image", fx.Registry.Host + "/pull/same-pulled:latest", "--output", "json"}, args...)...)
	if out.code != 0 {
		t.Fatalf("pull mode: exit %d\n%s", out.code, out.stderr)
	}
	if a, b := mustJSON(t, in.stdout).Digest, mustJSON(t, out.stdout).Digest; a != b {
		t.Fatalf("in-builder digest %s, pull-mode digest %s: the image depends on the mode", a, b)
	}

	// v2 of the builder: one buildpack version moved.
	cnb2, err := testenv.MakeBuilder(filepath.Join(fx.Dir, "shell-cnb-v2"), testenv.BuilderSpec{LifecycleDir: fx.LifecycleDir, RunImage: fx.RunImage, Buildpacks: shellOnly,
		VersionOverride: map[string]string{"cipack-examples/shell": "0.0.2"}})
	if err != nil {
		t.Fatal(err)
	}
	builder2 := fx.Registry.Host + "/pull/shell-builder:v2"
	if _, err := fx.PushBuilder(context.Background(), cnb2, builder2, base); err != nil {
		t.Fatal(err)
	}
	changed := changedLayers(t, builderRef, builder2)
	r, _ := pullBuild(t, cache, "--builder", builder2, "--image", fx.Registry.Host+"/pull/same-pulled:v2")
	if r.code != 0 {
		t.Fatalf("pull mode, builder v2: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf(" %d unpacked", changed)) || changed == 0 {
		t.Fatalf("builder v2 changes %d layers; the log says:\n%s", changed, r.stderr)
	}
}

// changedLayers counts the layers of b that a does not have.
func changedLayers(t *testing.T, a, b string) int {
	t.Helper()
	have := map[string]bool{}
	ls, _ := testenv.MustPull(t, a).Layers()
	for _, l := range ls {
		d, _ := l.DiffID()
		have[d.String()] = true
	}
	n := 0
	ls, _ = testenv.MustPull(t, b).Layers()
	for _, l := range ls {
		if d, _ := l.DiffID(); !have[d.String()] {
			n++
		}
	}
	return n
}

// Not root and no usable sudo: exit 6 with what is needed, nothing pushed.
func TestPullModeNeedsRoot(t *testing.T) {
	needFixture(t)
	ws := filepath.Join(fx.Dir, "pull-nonroot-"+randSuffix())
	root, _ := testenv.ModuleRoot()
	if err := copyDir(filepath.Join(root, "examples", "app"), ws); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("setpriv", "--reuid", fmt.Sprint(fx.UID), "--regid", fmt.Sprint(fx.GID), "--clear-groups",
		fx.Cipack, "build", "--builder", fx.BuilderImage, "--image", fx.Registry.Host+"/pull/nonroot:latest",
		"--path", ws, "--source-root", ws, "--cnb-dir", filepath.Join(fx.Dir, "no-cnb"), "--builder-cache", filepath.Join(fx.Dir, "nonroot-cache"))
	cmd.Env = append(os.Environ(), "HOME=/tmp", "PATH=/usr/bin:/bin")
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != exit.Builder || !strings.Contains(string(out), "needs root") || !strings.Contains(string(out), "sudo") {
		t.Fatalf("exit %d, want %d saying root or sudo is needed\n%s", code, exit.Builder, out)
	}
	if got := tags(t, fx.Registry.Host+"/pull/nonroot"); len(got) != 0 {
		t.Fatalf("pushed %v", got)
	}
}

// SIGTERM mid-build: cipack exits 130 and leaves no mount and no process.
func TestPullModeSIGTERMLeavesNothing(t *testing.T) {
	needFixture(t)
	base, err := testenv.RunImage(testenv.RunImageSpec{UID: fx.UID, GID: fx.GID, Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	builderRef := fx.Registry.Host + "/pull/hostile-builder:latest"
	if _, err := fx.PushBuilder(context.Background(), hostileBuilder(t), builderRef, base); err != nil {
		t.Fatal(err)
	}
	ws := filepath.Join(fx.Dir, "pull-term-"+randSuffix())
	root, _ := testenv.ModuleRoot()
	if err := copyDir(filepath.Join(root, "examples", "app"), ws); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fx.Cipack, "build", "--builder", builderRef, "--image", fx.Registry.Host+"/pull/term:latest", "--env", "HOSTILE=sleep",
		"--path", ws, "--source-root", ws, "--cnb-dir", filepath.Join(fx.Dir, "no-cnb"), "--builder-cache", filepath.Join(fx.Dir, "builder-cache"))
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := false
		for sc.Scan() {
			if !once && strings.Contains(sc.Text(), "hostile: ready") {
				once = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(2 * time.Minute):
		t.Fatal("the build never reached the buildpack")
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	pw.Close()
	if code := cmd.ProcessState.ExitCode(); code != exit.Canceled {
		t.Fatalf("exit %d, want %d", code, exit.Canceled)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), "cipack-sandbox-") {
		t.Fatalf("a sandbox mount is left on the host:\n%s", mounts)
	}
	// This cipack's own (other tests may run builds at the same time).
	if left, _ := filepath.Glob(filepath.Join(os.TempDir(), fmt.Sprintf("cipack-*-%d-*", cmd.Process.Pid))); len(left) != 0 {
		t.Fatalf("scratch dirs left: %v", left)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), "hostile/0.0.1/bin/build") || strings.Contains(string(b), "cipack-sandbox") || strings.Contains(string(b), "/cnb/lifecycle/creator") {
			t.Errorf("a process of the build is still running: %s %q", p, b)
		}
	}
}

// In-builder mode as root, with the checkout elsewhere than /workspace
// (a CI's own path): the app is bound at /workspace for the lifecycle, so
// the image works there, as in pull mode.
func TestInBuilderBindsTheAppAtWorkspace(t *testing.T) {
	needFixture(t)
	m := workspace(t, "bind-ws")
	empty := filepath.Join(fx.Dir, "empty-ws-"+randSuffix())
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	image := fx.Registry.Host + "/bind/app:latest"
	// The checkout at /src; /workspace exists (as in a builder image) but
	// is not the app.
	cmd := testenv.InSandbox(context.Background(), []testenv.Bind{{Host: m.CNB, Path: "/cnb"}, {Host: m.Layers, Path: "/layers"},
		{Host: empty, Path: "/workspace"}, {Host: m.Workspace, Path: "/workspace/../cipack-src-" + filepath.Base(m.Workspace)}},
		fx.Cipack, "build", "--path", "/cipack-src-"+filepath.Base(m.Workspace), "--source-root", "/cipack-src-"+filepath.Base(m.Workspace),
		"--image", image, "--process-type", "web")
	cmd.Env = append(os.Environ(), "CNB_USER_ID="+fmt.Sprint(fx.UID), "CNB_GROUP_ID="+fmt.Sprint(fx.GID))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "bound at /workspace") {
		t.Fatalf("the log should say the app was bound at /workspace:\n%s", out)
	}
	if wd := testenv.MustConfig(t, image).Config.WorkingDir; wd != "/workspace" {
		t.Fatalf("WORKDIR %q, want /workspace", wd)
	}
}

// A buildpack that writes an SBOM too large for --sbom-dir's copy stops a
// pull-mode build before export: nothing is pushed (the split phases let
// cipack look between build and export).
func TestOversizedSBOMStopsBeforeThePush(t *testing.T) {
	needFixture(t)
	bp := filepath.Join(t.TempDir(), "big-sbom")
	if err := os.MkdirAll(filepath.Join(bp, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"buildpack.toml": "api = \"0.10\"\n[buildpack]\nid = \"test/big-sbom\"\nversion = \"0.0.1\"\nsbom-formats = [\"application/vnd.cyclonedx+json\"]\n",
		"bin/detect":     "#!/bin/sh\nexit 0\n",
		"bin/build":      "#!/bin/sh\nhead -c 73400320 /dev/zero > \"$CNB_LAYERS_DIR/launch.sbom.cdx.json\"\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(bp, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	image := fx.Registry.Host + "/pull-big-sbom/app:latest"
	r, _ := pullBuild(t, filepath.Join(fx.Dir, "builder-cache"), "--builder", fx.BuilderImage, "--image", image, "--buildpack", bp, "--sbom-dir", filepath.Join(t.TempDir(), "sbom"))
	if r.code != exit.Build || !strings.Contains(r.stderr, "launch.sbom.cdx.json") || !strings.Contains(r.stderr, "nothing was pushed") {
		t.Fatalf("exit %d, want %d naming the SBOM\n%s", r.code, exit.Build, r.stderr)
	}
	if strings.Contains(r.stderr, "===> EXPORTING") {
		t.Fatal("the export ran")
	}
	if got := tags(t, fx.Registry.Host+"/pull-big-sbom/app"); len(got) != 0 {
		t.Fatalf("tags %v were pushed", got)
	}
}
