package tektontest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/reconciler/taskrun/resources"
	corev1 "k8s.io/api/core/v1"

	"github.com/cipack/cipack/internal/testenv"
	gv1 "github.com/google/go-containerregistry/pkg/v1"
)

var fx *testenv.Fixture

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testenv.RunTests(m, "tektontest", &fx, nil))
}

// koImage is the cipack image built the way the release builds it: ko,
// from the module kotool pins, from source, into the loopback registry
// (the base image is the test run image: ko's default base is out of
// reach here, and the Tasks use only the binary).
var koImage struct {
	sync.Once
	ref string
	err error
}

func cipackImage(t *testing.T) string {
	t.Helper()
	koImage.Do(func() {
		ctx := context.Background()
		kotool, err := filepath.Abs("kotool")
		if err != nil {
			koImage.err = err
			return
		}
		tools, err := testenv.ToolDir(ctx, kotool, "github.com/google/ko")
		if err != nil {
			koImage.err = err
			return
		}
		if koImage.err = testenv.BuildTool(ctx, kotool, tools, "ko", "github.com/google/ko"); koImage.err != nil {
			return
		}
		root, err := testenv.ModuleRoot()
		if err != nil {
			koImage.err = err
			return
		}
		cmd := exec.CommandContext(ctx, filepath.Join(tools, "ko"), "build", "--bare", "--sbom", "none", "--platform", "linux/"+runtime.GOARCH, "./cmd/cipack")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "KO_DOCKER_REPO="+fx.Registry.Host+"/cipack-test/cipack-ko", "KO_DEFAULTBASEIMAGE="+fx.RunImage,
			"VERSION=v0.0.0-test", "KOCACHE="+filepath.Join(testenv.CacheDir(), "kocache"))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			koImage.err = fmt.Errorf("ko build: %w\n%s", err, stderr.String())
			return
		}
		koImage.ref = strings.TrimSpace(string(out))
	})
	if koImage.err != nil {
		t.Fatal(koImage.err)
	}
	return koImage.ref
}

func needFixture(t *testing.T) {
	if fx == nil {
		t.Skip("skipped in -short mode (make unit)")
	}
}

// taskRun is a TaskRun of a Task, rendered with Tekton's own substitution
// and run step by step on this machine: each step in a private mount
// namespace where its volumes, workspaces and /tekton/results are bind
// mounts of temp dirs, the step image standing in as described per step.
type taskRun struct {
	spec       *v1.TaskSpec
	results    string
	workspaces map[string]string
	volumes    map[string]string
	output     strings.Builder
	// asUser, when set ("UID:GID"), runs the steps as that user with its
	// group as a supplementary group, as a pod with runAsUser and fsGroup
	// does (see fsGroup); else as root.
	asUser string
}

func render(t *testing.T, task *v1.Task, params v1.Params, workspaces map[string]string) *taskRun {
	t.Helper()
	ctx := context.Background()
	tr := &v1.TaskRun{}
	tr.Name = task.Name + "-run"
	// The Tasks' default CIPACK_IMAGE names a public registry; the tests
	// use the image built from this tree on the loopback registry.
	if !slices.ContainsFunc(params, func(p v1.Param) bool { return p.Name == "CIPACK_IMAGE" }) {
		params = append(params, str("CIPACK_IMAGE", cipackImage(t)))
	}
	tr.Spec.Params = params
	tr.Spec.TaskRef = &v1.TaskRef{Name: task.Name}
	for name := range workspaces {
		tr.Spec.Workspaces = append(tr.Spec.Workspaces, v1.WorkspaceBinding{Name: name, EmptyDir: &corev1.EmptyDirVolumeSource{}})
	}
	tr.SetDefaults(ctx)
	if fe := tr.Validate(ctx); fe != nil && fe.Error() != "" {
		t.Fatalf("TaskRun: %v", fe)
	}
	spec := task.Spec.DeepCopy()
	spec = resources.ApplyParameters(spec, tr, spec.Params...)
	spec = resources.ApplyContexts(spec, task.Name, tr)
	spec = resources.ApplyWorkspaces(ctx, spec, spec.Workspaces, tr.Spec.Workspaces, map[string]corev1.Volume{})
	spec = resources.ApplyResults(spec)
	r := &taskRun{spec: spec, results: dir(t), workspaces: map[string]string{}, volumes: map[string]string{}}
	for _, w := range spec.Workspaces {
		if host, ok := workspaces[w.Name]; ok {
			r.workspaces[w.GetMountPath()] = host
		}
	}
	for _, v := range spec.Volumes {
		r.volumes[v.Name] = dir(t)
	}
	return r
}

func dir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp(fx.Dir, "tekton-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// run executes step i. image says how the step's image is stood in for:
// "cipack" (the step's image is pulled from the registry and unpacked, and
// its command runs from there: a static binary needs nothing else) or
// "builder" (the fixture's builder: /cnb bound, its CNB_USER_ID and
// CNB_GROUP_ID in the env, as the builder image sets them).
func (r *taskRun) run(t *testing.T, i int, image string) error {
	t.Helper()
	step := r.spec.Steps[i]
	binds := []testenv.Bind{{Host: r.results, Path: "/tekton/results"}}
	for path, host := range r.workspaces {
		binds = append(binds, testenv.Bind{Host: host, Path: path})
	}
	for _, vm := range step.VolumeMounts {
		binds = append(binds, testenv.Bind{Host: r.volumes[vm.Name], Path: vm.MountPath})
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=/root"}
	for _, e := range step.Env {
		if e.ValueFrom != nil {
			continue // secrets are not bound here
		}
		env = append(env, e.Name+"="+e.Value)
	}
	var argv []string
	switch image {
	case "builder":
		binds = append(binds, testenv.Bind{Host: fx.BuilderDir, Path: "/cnb"})
		env = append(env, "CNB_USER_ID="+strconv.Itoa(fx.UID), "CNB_GROUP_ID="+strconv.Itoa(fx.GID))
	case "cipack":
	default:
		t.Fatalf("unknown stand-in %q", image)
	}
	if step.Script != "" {
		scripts := dir(t)
		if err := os.WriteFile(filepath.Join(scripts, "script"), []byte(step.Script), 0o755); err != nil {
			t.Fatal(err)
		}
		binds = append(binds, testenv.Bind{Host: scripts, Path: "/tekton/scripts"})
		argv = append([]string{"/bin/sh", "/tekton/scripts/script"}, step.Args...)
	} else {
		argv = append(append([]string{}, step.Command...), step.Args...)
	}
	if image == "cipack" {
		rootfs := dir(t)
		cf, err := testenv.Unpack(context.Background(), step.Image, rootfs)
		if err != nil {
			t.Fatalf("step %s image: %v", step.Name, err)
		}
		if len(step.Command) == 0 && step.Script == "" {
			// The step runs the image's entrypoint, as a pod would.
			argv = append(append([]string{}, cf.Config.Entrypoint...), step.Args...)
		}
		argv[0] = filepath.Join(rootfs, argv[0])
	}
	if r.asUser != "" {
		uid, gid, _ := strings.Cut(r.asUser, ":")
		argv = append([]string{"setpriv", "--reuid", uid, "--regid", gid, "--groups", gid, "--"}, argv...)
		env[1] = "HOME=/tmp"
	}
	cmd := testenv.InSandbox(context.Background(), binds, argv...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	r.output.WriteString(fmt.Sprintf("--- step %s\n%s", step.Name, out))
	return err
}

func (r *taskRun) result(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.results, name))
	if err != nil {
		t.Fatalf("result %s: %v\n%s", name, err, r.output.String())
	}
	return string(b)
}

func appWorkspace(t *testing.T) string {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	ws := dir(t)
	app := filepath.Join(ws, "apps", "hello")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "examples", "app", "app.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(app, "app.sh"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return ws
}

func str(n, v string) v1.Param { return v1.Param{Name: n, Value: *v1.NewStructuredValues(v)} }
func arr(n string, v ...string) v1.Param {
	return v1.Param{Name: n, Value: *v1.NewStructuredValues(v[0], v[1:]...)}
}

func TestBuildTaskRunsAndWritesChainsResults(t *testing.T) {
	needFixture(t)
	sbomDir := dir(t)
	image := fx.Registry.Host + "/tekton/app:latest"
	run := render(t, loadTask(t, "cipack-build.yaml"), v1.Params{
		str("IMAGE", image),
		str("BUILDER_IMAGE", fx.BuilderImage),
		str("SOURCE_SUBPATH", "apps/hello"),
		arr("ADDITIONAL_TAGS", "v1", "stable"),
		arr("ENV_VARS", "GREETING=from=tekton", "OTHER=a b c"),
		str("PROCESS_TYPE", "web"),
		str("SOURCE_URL", "https://git.example/team/hello"),
		str("SOURCE_REVISION", "89abcdef0123456789abcdef0123456789abcdef"),
		str("CIPACK_IMAGE", cipackImage(t)),
	}, map[string]string{"source": appWorkspace(t), "cache": dir(t), "sbom": sbomDir})
	if err := run.run(t, 0, "cipack"); err != nil {
		t.Fatalf("install step: %v\n%s", err, run.output.String())
	}
	if err := run.run(t, 1, "builder"); err != nil {
		t.Fatalf("build step: %v\n%s", err, run.output.String())
	}
	url, digest := run.result(t, "IMAGE_URL"), run.result(t, "IMAGE_DIGEST")
	if url != image {
		t.Fatalf("IMAGE_URL %q, want %q", url, image)
	}
	for _, ref := range []string{image, fx.Registry.Host + "/tekton/app:v1", fx.Registry.Host + "/tekton/app:stable"} {
		r, _ := name.ParseReference(ref)
		d, err := remote.Head(r)
		if err != nil || d.Digest.String() != digest {
			t.Fatalf("%s: %v %v, IMAGE_DIGEST %s", ref, d, err, digest)
		}
	}
	out, err := testenv.RunImageProcess(context.Background(), url+"@"+digest, "web", dir(t))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "GREETING=from=tekton") {
		t.Fatalf("the image printed %q", out)
	}
	if !strings.Contains(run.output.String(), "===> EXPORTING") {
		t.Fatalf("no lifecycle log:\n%s", run.output.String())
	}
	// The source params became the image's project metadata, and the
	// sbom workspace got the buildpack's SBOM files.
	r, _ := name.ParseReference(url + "@" + digest)
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if label := cf.Config.Labels["io.buildpacks.project.metadata"]; !strings.Contains(label, "89abcdef0123456789abcdef0123456789abcdef") || !strings.Contains(label, "https://git.example/team/hello") {
		t.Fatalf("project metadata %q", label)
	}
	if _, err := os.Stat(filepath.Join(sbomDir, "launch", "cipack-examples_shell", "web", "sbom.cdx.json")); err != nil {
		t.Fatalf("the sbom workspace lacks the CycloneDX SBOM: %v", err)
	}
}

func TestBuildTaskBadParamsNameTheParam(t *testing.T) {
	needFixture(t)
	good := func() v1.Params {
		return v1.Params{str("IMAGE", fx.Registry.Host+"/tekton/bad:latest"), str("BUILDER_IMAGE", fx.BuilderImage), str("SOURCE_SUBPATH", "apps/hello")}
	}
	cases := []struct {
		name   string
		params v1.Params
		want   string
	}{
		{"empty IMAGE", append(good()[1:], str("IMAGE", "")), "Task param IMAGE is at fault"},
		{"ENV_VARS item without =", append(good(), arr("ENV_VARS", "OK=1", "BROKEN")), "Task param ENV_VARS is at fault"},
		{"unreadable BUILDER_IMAGE", append(good()[:1], str("BUILDER_IMAGE", fx.Registry.Host+"/no/such-builder:1"), str("SOURCE_SUBPATH", "apps/hello")), "Task param BUILDER_IMAGE is at fault"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			run := render(t, loadTask(t, "cipack-build.yaml"), c.params, map[string]string{"source": appWorkspace(t)})
			if err := run.run(t, 0, "cipack"); err != nil {
				t.Fatal(err)
			}
			err := run.run(t, 1, "builder")
			var ee *exec.ExitError
			if err == nil || !asExit(err, &ee) {
				t.Fatalf("the step should fail: %v\n%s", err, run.output.String())
			}
			if !strings.Contains(run.output.String(), c.want) {
				t.Fatalf("output lacks %q:\n%s", c.want, run.output.String())
			}
			if _, err := os.Stat(filepath.Join(run.results, "IMAGE_DIGEST")); err == nil {
				t.Fatal("a failed build wrote IMAGE_DIGEST")
			}
		})
	}
}

func asExit(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*ee = e
	return ok
}

func TestRebaseTaskAfterRunImageBump(t *testing.T) {
	needFixture(t)
	h := fx.Registry.Host
	runImage := h + "/tekton-rebase/run:latest"
	push := func(version string) {
		img, err := testenv.RunImage(testenv.RunImageSpec{UID: fx.UID, GID: fx.GID, Version: version})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := testenv.Push(context.Background(), runImage, img); err != nil {
			t.Fatal(err)
		}
	}
	push("v1")
	app := h + "/tekton-rebase/app:latest"
	build := render(t, loadTask(t, "cipack-build.yaml"), v1.Params{
		str("IMAGE", app), str("BUILDER_IMAGE", fx.BuilderImage), str("SOURCE_SUBPATH", "apps/hello"), str("RUN_IMAGE", runImage),
	}, map[string]string{"source": appWorkspace(t)})
	if err := build.run(t, 0, "cipack"); err != nil {
		t.Fatal(err)
	}
	if err := build.run(t, 1, "builder"); err != nil {
		t.Fatalf("%v\n%s", err, build.output.String())
	}
	oldDigest := build.result(t, "IMAGE_DIGEST")
	push("v2")

	fleet := dir(t)
	if err := os.WriteFile(filepath.Join(fleet, "fleet.yaml"), []byte("images:\n  - image: "+app+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rebase := render(t, loadTask(t, "cipack-rebase.yaml"), v1.Params{str("CIPACK_IMAGE", cipackImage(t))}, map[string]string{"fleet": fleet})
	if err := rebase.run(t, 0, "cipack"); err != nil {
		t.Fatalf("rebase step: %v\n%s", err, rebase.output.String())
	}
	if got := rebase.result(t, "REBASED"); got != "1" {
		t.Fatalf("REBASED = %q\n%s", got, rebase.output.String())
	}
	for _, res := range []string{"UP_TO_DATE", "REBUILD", "SKIPPED", "FAILED"} {
		if got := rebase.result(t, res); got != "0" {
			t.Fatalf("%s = %q", res, got)
		}
	}
	r, _ := name.ParseReference(app)
	d, err := remote.Head(r)
	if err != nil {
		t.Fatal(err)
	}
	if d.Digest.String() == oldDigest || rebase.result(t, "MOVED_DIGESTS") != app+"@"+d.Digest.String() {
		t.Fatalf("MOVED_DIGESTS %q, registry %s, old %s", rebase.result(t, "MOVED_DIGESTS"), d.Digest, oldDigest)
	}
}

// The manifest Task combines a build TaskRun's image (by its IMAGE_REF
// result) and an arm64 image into one index, and writes Chains' results.
// The arm64 image is synthesized from the amd64 one (the lifecycle cannot
// run arm64 here): same layers, config platform arm64.
func TestManifestTaskMergesPerArchBuilds(t *testing.T) {
	needFixture(t)
	h := fx.Registry.Host
	build := render(t, loadTask(t, "cipack-build.yaml"), v1.Params{
		str("IMAGE", h+"/tekton-ma/app:amd64"), str("BUILDER_IMAGE", fx.BuilderImage), str("SOURCE_SUBPATH", "apps/hello"),
	}, map[string]string{"source": appWorkspace(t)})
	if err := build.run(t, 0, "cipack"); err != nil {
		t.Fatal(err)
	}
	if err := build.run(t, 1, "builder"); err != nil {
		t.Fatalf("%v\n%s", err, build.output.String())
	}
	amdRef := build.result(t, "IMAGE_REF")
	if amdRef != h+"/tekton-ma/app@"+build.result(t, "IMAGE_DIGEST") {
		t.Fatalf("IMAGE_REF %q does not match IMAGE_DIGEST", amdRef)
	}
	r, _ := name.ParseReference(amdRef)
	amd, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	arm, err := testenv.ForPlatform(amd, gv1.Platform{OS: "linux", Architecture: "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	armRef := h + "/tekton-ma/app:arm64"
	armDigest, err := testenv.Push(context.Background(), armRef, arm)
	if err != nil {
		t.Fatal(err)
	}
	target := h + "/tekton-ma/app:latest"
	merge := render(t, loadTask(t, "cipack-manifest.yaml"), v1.Params{
		str("IMAGE", target), arr("SOURCES", amdRef, armRef), str("ADDITIONAL_TAGS", h+"/tekton-ma/app:v1"), str("CIPACK_IMAGE", cipackImage(t)),
	}, map[string]string{})
	if err := merge.run(t, 0, "cipack"); err != nil {
		t.Fatalf("manifest step: %v\n%s", err, merge.output.String())
	}
	if got := merge.result(t, "IMAGE_URL"); got != target {
		t.Fatalf("IMAGE_URL %q", got)
	}
	tr, _ := name.ParseReference(target)
	idx, err := remote.Index(tr)
	if err != nil {
		t.Fatalf("%s is not an index: %v", target, err)
	}
	d, _ := idx.Digest()
	if merge.result(t, "IMAGE_DIGEST") != d.String() {
		t.Fatalf("IMAGE_DIGEST %q, registry %s", merge.result(t, "IMAGE_DIGEST"), d)
	}
	im, _ := idx.IndexManifest()
	got := map[string]string{}
	for _, m := range im.Manifests {
		got[m.Platform.Architecture] = m.Digest.String()
	}
	if got["amd64"] != build.result(t, "IMAGE_DIGEST") || got["arm64"] != armDigest.String() {
		t.Fatalf("index children %v", got)
	}
}

// The release, as a snapshot: `make release` makes the static binaries
// (cipack, lifecycle and launcher for amd64 and arm64) and their
// checksums; ko (the release's image tool) builds the image for both
// platforms and pushes an index to the loopback registry. The Tasks all
// default to one release image.
func TestReleaseSnapshot(t *testing.T) {
	needFixture(t)
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dist := dir(t)
	mk := exec.Command("make", "release", "VERSION=v0.0.0-snapshot", "DIST="+dist)
	mk.Dir = root
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}
	sums := exec.Command("sha256sum", "-c", "checksums.txt")
	sums.Dir = dist
	if out, err := sums.CombinedOutput(); err != nil || strings.Count(string(out), ": OK") != 6 {
		t.Fatalf("checksums: %v\n%s", err, out)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		for _, bin := range []string{"cipack", "lifecycle", "launcher"} {
			asset := filepath.Join(dist, bin+"_linux_"+arch)
			if _, err := os.Stat(asset); err != nil {
				t.Fatalf("no release asset: %v", err)
			}
			out, _ := exec.Command("file", asset).CombinedOutput()
			if len(out) > 0 && !strings.Contains(string(out), "statically linked") && !strings.Contains(string(out), "cannot open") && !strings.Contains(string(out), "not found") {
				t.Errorf("%s_linux_%s is not static: %s", bin, arch, out)
			}
		}
	}
	cipackImage(t) // builds ko
	kotool, _ := filepath.Abs("kotool")
	tools, err := testenv.ToolDir(context.Background(), kotool, "github.com/google/ko")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(tools, "ko"), "build", "--bare", "--sbom", "none", "--platform", "linux/amd64,linux/arm64", "--tags", "v0.0.0-snapshot", "./cmd/cipack")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "KO_DOCKER_REPO="+fx.Registry.Host+"/cipack-test/release", "KO_DEFAULTBASEIMAGE="+multiArchBase(t),
		"VERSION=v0.0.0-snapshot", "KOCACHE="+filepath.Join(testenv.CacheDir(), "kocache"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ko build: %v", err)
	}
	r, _ := name.ParseReference(fx.Registry.Host + "/cipack-test/release:v0.0.0-snapshot")
	idx, err := remote.Index(r)
	if err != nil {
		t.Fatalf("the release image is not an index (%s): %v", out, err)
	}
	im, _ := idx.IndexManifest()
	var platforms []string
	for _, m := range im.Manifests {
		platforms = append(platforms, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	slices.Sort(platforms)
	if strings.Join(platforms, ",") != "linux/amd64,linux/arm64" {
		t.Fatalf("release image platforms %v", platforms)
	}
	var defaults []string
	for _, f := range []string{"cipack-build.yaml", "cipack-rebase.yaml", "cipack-manifest.yaml"} {
		for _, p := range loadTask(t, f).Spec.Params {
			if p.Name == "CIPACK_IMAGE" {
				defaults = append(defaults, p.Default.StringVal)
			}
		}
	}
	if len(defaults) != 3 || defaults[0] != defaults[1] || defaults[1] != defaults[2] || !strings.HasPrefix(defaults[0], "ghcr.io/cipack/cipack:v") {
		t.Fatalf("the Tasks' CIPACK_IMAGE defaults %v: one release image, set by make release-prep", defaults)
	}
}

// multiArchBase pushes a two-platform base image for ko (the run image,
// its arm64 twin relabelled: the binary on top is what matters).
func multiArchBase(t *testing.T) string {
	t.Helper()
	img, err := testenv.RunImage(testenv.RunImageSpec{UID: fx.UID, GID: fx.GID, Version: "base"})
	if err != nil {
		t.Fatal(err)
	}
	arm, err := testenv.ForPlatform(img, gv1.Platform{OS: "linux", Architecture: "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	ref := fx.Registry.Host + "/cipack-test/base:multi"
	if _, err := testenv.PushIndex(context.Background(), ref, "application/vnd.oci.image.index.v1+json",
		testenv.IndexChild{Image: img, Platform: gv1.Platform{OS: "linux", Architecture: "amd64"}},
		testenv.IndexChild{Image: arm, Platform: gv1.Platform{OS: "linux", Architecture: "arm64"}}); err != nil {
		t.Fatal(err)
	}
	return ref
}
