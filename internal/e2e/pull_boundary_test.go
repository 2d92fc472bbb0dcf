package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/testenv"
)

// The container boundary of pull mode, seen from inside by a spy
// buildpack, and what the builder image cannot override.

// pullBuildEnv is pullBuild with extra environment for cipack.
func pullBuildEnv(t testing.TB, cache string, env []string, args ...string) run {
	ws := filepath.Join(fx.Dir, "pull-ws-"+randSuffix())
	root, _ := testenv.ModuleRoot()
	if err := copyDir(filepath.Join(root, "examples", "app"), ws); err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"build", "--path", ws, "--source-root", ws, "--cnb-dir", filepath.Join(fx.Dir, "no-cnb"), "--builder-cache", cache}, args...)
	cmd := exec.Command(fx.Cipack, argv...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	_ = cmd.Run()
	return run{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
}

var hostileImageOnce struct {
	sync.Once
	ref string
	err error
}

// hostileBuilderImage pushes the hostile builder (the spy buildpack) as
// an image for pull mode.
func hostileBuilderImage(t *testing.T) string {
	t.Helper()
	cnb := hostileBuilder(t)
	hostileImageOnce.Do(func() {
		base, err := testenv.RunImage(testenv.RunImageSpec{UID: fx.UID, GID: fx.GID, Version: "v1"})
		if err != nil {
			hostileImageOnce.err = err
			return
		}
		hostileImageOnce.ref = fx.Registry.Host + "/pull/hostile-builder:v1"
		_, hostileImageOnce.err = fx.PushBuilder(context.Background(), cnb, hostileImageOnce.ref, base)
	})
	if hostileImageOnce.err != nil {
		t.Fatal(hostileImageOnce.err)
	}
	return hostileImageOnce.ref
}

// A spy buildpack in pull mode finds no capability, no_new_privs set, a
// seccomp filter, no block device, a nosuid/nodev root, the proxy the
// user set and the CA file SSL_CERT_FILE names (bound read-only; the
// lifecycle keeps the variable itself from buildpacks, as in-builder),
// and no registry credential anywhere it can read (env, /proc, the
// platform dir, /tmp, /cache).
func TestPullModeSpyFindsNoPrivilegeNorCredential(t *testing.T) {
	needFixture(t)
	builder := hostileBuilderImage(t)
	auth, err := testenv.StartProxy(fx.Registry.Host, testenv.ProxyOptions{User: "ci", Password: "registry-s3cret-pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer auth.Close()
	ca := filepath.Join(fx.Dir, "proxy-ca-"+randSuffix()+".pem")
	if err := os.WriteFile(ca, []byte("# the proxy's CA\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{
		"registry password":       "registry-s3cret-pw",
		"registry auth header":    base64.StdEncoding.EncodeToString([]byte("ci:registry-s3cret-pw")),
		"CNB_REGISTRY_AUTH token": "cnb-auth-s3cret",
		"GitHub token":            "ghs_github-s3cret",
	}
	env := []string{
		"CIPACK_REGISTRY_USERNAME=ci", "CIPACK_REGISTRY_PASSWORD=registry-s3cret-pw",
		`CNB_REGISTRY_AUTH={"other.example": "Bearer cnb-auth-s3cret"}`, "CIPACK_GITHUB_TOKEN=ghs_github-s3cret",
		"HTTPS_PROXY=http://proxy.invalid:3128", "NO_PROXY=127.0.0.1,localhost", "SSL_CERT_FILE=" + ca,
	}
	// The builder comes through the password-protected proxy too.
	proxied := strings.Replace(builder, fx.Registry.Host, auth.Host, 1)
	r := pullBuildEnv(t, filepath.Join(fx.Dir, "spy-cache-"+randSuffix()), env, "--builder", proxied,
		"--run-image", strings.Replace(fx.RunImage, fx.Registry.Host, auth.Host, 1),
		"--image", auth.Host+"/pull/spy:latest", "--env", "HOSTILE=spy", "--env", "HOSTILE_CERT="+ca)
	if r.code != 0 {
		t.Fatalf("spy build: exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		fmt.Sprintf("proc files as %d", fx.UID),
		"hostile: status CapInh:\t0000000000000000", "hostile: status CapPrm:\t0000000000000000",
		"hostile: status CapEff:\t0000000000000000", "hostile: status CapBnd:\t0000000000000000",
		"hostile: status CapAmb:\t0000000000000000", "hostile: status NoNewPrivs:\t1", "hostile: status Seccomp:\t2",
		"hostile: block devices: 0 in /, 0 in /dev",
		"hostile: proxy HTTPS_PROXY=http://proxy.invalid:3128 NO_PROXY=127.0.0.1,localhost",
		"hostile: cert # the proxy's CA",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the spy did not see %q", want)
		}
	}
	if !strings.Contains(r.stderr, "spy-read") {
		t.Errorf("the spy read nothing at all (not even its own environ): it did not look")
	}
	rootMount := lineWith(r.stderr, "hostile: root mount ")
	if !strings.Contains(rootMount, "nosuid") || !strings.Contains(rootMount, "nodev") {
		t.Errorf("the container's root is not nosuid,nodev: %q", rootMount)
	}
	devs := lineWith(r.stderr, "hostile: dev: ")
	for _, dev := range []string{"sda", "vda", "nvme", "loop", "mem", "kmsg", "dm-"} {
		if strings.Contains(devs, dev) {
			t.Errorf("a host device is visible: %q", devs)
		}
	}
	for what, s := range secrets {
		if strings.Contains(r.stderr, s) || strings.Contains(r.stdout, s) {
			t.Errorf("build code read the %s", what)
		}
	}
	if t.Failed() {
		t.Logf("cipack's log:\n%s", r.stderr)
	}
}

func lineWith(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if i := strings.Index(l, prefix); i >= 0 {
			return l[i:]
		}
	}
	return ""
}

// pushBuilderWith pushes fx's builder image changed by edit.
func pushBuilderWith(t *testing.T, ref string, edit func(v1.Image) (v1.Image, error)) string {
	t.Helper()
	img, err := edit(testenv.MustPull(t, fx.BuilderImage))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.Push(context.Background(), ref, img); err != nil {
		t.Fatal(err)
	}
	return ref
}

func withEnv(env ...string) func(v1.Image) (v1.Image, error) {
	return func(img v1.Image) (v1.Image, error) {
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		cf = cf.DeepCopy()
		cf.Config.Env = append(cf.Config.Env, env...)
		return mutate.ConfigFile(img, cf)
	}
}

// The builder's Env never overrides what the user asked for: its
// CNB_RUN_IMAGE and CNB_PLATFORM_API are not the lifecycle's, and a
// builder that would run build code as root is refused.
func TestPullModeBuilderEnvCannotOverrideTheUser(t *testing.T) {
	needFixture(t)
	other := fx.Registry.Host + "/pull/other-run:v1"
	if _, err := testenv.Push(context.Background(), other, testenv.MustPull(t, fx.RunImage)); err != nil {
		t.Fatal(err)
	}
	builder := pushBuilderWith(t, fx.Registry.Host+"/pull/env-builder:v1", withEnv("CNB_RUN_IMAGE="+other, "CNB_PLATFORM_API=0.12"))
	image := fx.Registry.Host + "/pull/env-app:latest"
	r := pullBuildEnv(t, filepath.Join(fx.Dir, "env-cache-"+randSuffix()), nil, "--builder", builder, "--run-image", fx.RunImage,
		"--image", image, "--output", "json")
	if r.code != 0 {
		t.Fatalf("build: exit %d\n%s", r.code, r.stderr)
	}
	if api := mustJSON(t, r.stdout).PlatformAPI; api != "0.15" {
		t.Errorf("platform API %s: the builder's CNB_PLATFORM_API chose it", api)
	}
	if got := recordedRunImage(t, image); got != fx.RunImage {
		t.Errorf("the image records run image %q, want the --run-image %q", got, fx.RunImage)
	}

	root := pushBuilderWith(t, fx.Registry.Host+"/pull/root-builder:v1", withEnv("CNB_USER_ID=0", "CNB_GROUP_ID=0"))
	r = pullBuildEnv(t, filepath.Join(fx.Dir, "env-cache-"+randSuffix()), nil, "--builder", root, "--image", image+"-root")
	if r.code != exit.Builder || !strings.Contains(r.stderr, "never runs build code as root") {
		t.Fatalf("a builder whose user is root: exit %d, want %d\n%s", r.code, exit.Builder, r.stderr)
	}
	if got := tags(t, fx.Registry.Host+"/pull/env-app"); len(got) != 1 {
		t.Errorf("tags %v: the refused build pushed something", got)
	}
}

// A builder of 120+ layers (Paketo's reach the 127-layer limit) builds in
// pull mode with a long cache path like the action's, and the image runs.
func TestPullModeBuilderOf120Layers(t *testing.T) {
	needFixture(t)
	builder := pushBuilderWith(t, fx.Registry.Host+"/pull/wide-builder:v1", func(img v1.Image) (v1.Image, error) {
		return withFillerLayers(img, 126, 64)
	})
	cf := testenv.MustConfig(t, builder)
	if n := len(cf.RootFS.DiffIDs); n < 120 {
		t.Fatalf("the builder has %d layers, want 120 or more", n)
	}
	// As deep as a self-hosted runner's: _work/_temp/cipack-cache/builders.
	cache := filepath.Join(fx.Dir, "actions-runner", "_work", "_temp", "cipack-cache", "builders-"+randSuffix())
	image := fx.Registry.Host + "/pull/wide-app:latest"
	r := pullBuildEnv(t, cache, nil, "--builder", builder, "--image", image, "--env", "GREETING=wide", "--process-type", "web")
	if r.code != 0 {
		t.Fatalf("a %d-layer builder: exit %d\n%s", len(cf.RootFS.DiffIDs), r.code, r.stderr)
	}
	out, err := testenv.RunImageProcess(context.Background(), strings.TrimSpace(r.stdout), "web", filepath.Join(fx.Dir, "wide-run-"+randSuffix()))
	if err != nil || !strings.Contains(out, "GREETING=wide") {
		t.Fatalf("the image printed %q (%v)", out, err)
	}
	r = pullBuildEnv(t, cache, nil, "--builder", builder, "--image", image)
	if r.code != 0 || !strings.Contains(r.stderr, " 0 unpacked") {
		t.Fatalf("warm rebuild: exit %d\n%s", r.code, r.stderr)
	}
}

// withFillerLayers appends layers until img has total layers, each one
// small file of size bytes under /opt/filler.
func withFillerLayers(img v1.Image, total, size int) (v1.Image, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for i := len(layers); i < total; i++ {
		body := []byte(strings.Repeat(fmt.Sprintf("%04d", i), size/4))
		l, err := testenv.LayerFromFiles([]testenv.TarFile{
			{Name: "opt/", Dir: true, Mode: 0o755}, {Name: "opt/filler/", Dir: true, Mode: 0o755},
			{Name: fmt.Sprintf("opt/filler/%04d", i), Mode: 0o644, Body: body},
		})
		if err != nil {
			return nil, err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return nil, err
		}
	}
	return img, nil
}

// The user's checkout (another user's, with .git) is left as it was by a
// build as root, in pull mode and in-builder mode: same files, owners,
// modes, times and contents.
func TestBuildsLeaveTheCheckoutAsItWas(t *testing.T) {
	needFixture(t)
	ws := filepath.Join(fx.Dir, "checkout-"+randSuffix())
	root, _ := testenv.ModuleRoot()
	if err := copyDir(filepath.Join(root, "examples", "app"), ws); err != nil {
		t.Fatal(err)
	}
	// A checkout as a CI makes it: another user's, with .git.
	if err := os.MkdirAll(filepath.Join(ws, ".git", "hooks"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{".git/config": "[core]\n\tbare = false\n", ".git/HEAD": "ref: refs/heads/main\n"} {
		if err := os.WriteFile(filepath.Join(ws, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("chown", "-R", "4242:4242", ws).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	before := testenv.TreeState(t, ws)
	cache := filepath.Join(fx.Dir, "checkout-cache-"+randSuffix())
	cmd := exec.Command(fx.Cipack, "build", "--path", ws, "--source-root", ws, "--cnb-dir", filepath.Join(fx.Dir, "no-cnb"),
		"--builder-cache", cache, "--builder", fx.BuilderImage, "--image", fx.Registry.Host+"/pull/checkout:latest")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pull build: %v\n%s", err, out)
	}
	if after := testenv.TreeState(t, ws); after != before {
		t.Fatalf("pull mode changed the checkout:\nbefore\n%s\nafter\n%s", before, after)
	}
	m := testenv.Mounts{CNB: fx.BuilderDir, Layers: filepath.Join(fx.Dir, "checkout-layers-"+randSuffix()), Workspace: ws}
	if err := os.MkdirAll(m.Layers, 0o755); err != nil {
		t.Fatal(err)
	}
	r := cipackBuildIn(t, m, nil, "--image", fx.Registry.Host+"/pull/checkout-in-builder:latest")
	if r.code != 0 {
		t.Fatalf("in-builder build: exit %d\n%s", r.code, r.stderr)
	}
	if after := testenv.TreeState(t, ws); after != before {
		t.Fatalf("in-builder mode changed the checkout:\nbefore\n%s\nafter\n%s", before, after)
	}
}

// lingering lists the processes a build left running (the hostile
// buildpack's linger mode marks its argv).
func lingering(t *testing.T) []string {
	t.Helper()
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), "hostile-linger") {
			out = append(out, filepath.Dir(p)+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

// No build process outlives the lifecycle, in any mode: a buildpack's
// detached process (which would rewrite the SBOM after export) is gone
// before cipack copies the SBOM, and the SBOM dir holds only what the
// exporter wrote.
func TestNoBuildProcessOutlivesTheBuild(t *testing.T) {
	needFixture(t)
	builder := hostileBuilderImage(t)
	check := func(mode string, r run, sbom string) {
		t.Helper()
		if r.code != 0 || !strings.Contains(r.stderr, "hostile: left a process behind") {
			t.Fatalf("%s: exit %d\n%s", mode, r.code, r.stderr)
		}
		time.Sleep(1500 * time.Millisecond) // past the lingerer's wait
		if left := lingering(t); len(left) > 0 {
			for _, l := range left {
				pid, _ := strconv.Atoi(strings.TrimPrefix(strings.SplitN(l, ":", 2)[0], "/proc/"))
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Fatalf("%s: build processes outlived the build: %v", mode, left)
		}
		if _, err := os.Stat(filepath.Join(sbom, "launch", "lingered.json")); !os.IsNotExist(err) {
			t.Errorf("%s: a lingering process wrote into the SBOM dir after export: %v", mode, err)
		}
	}
	sbom := filepath.Join(fx.Dir, "linger-sbom-"+randSuffix())
	r := pullBuildEnv(t, filepath.Join(fx.Dir, "linger-cache-"+randSuffix()), nil, "--builder", builder,
		"--image", fx.Registry.Host+"/pull/linger:latest", "--env", "HOSTILE=linger", "--sbom-dir", sbom)
	check("pull mode", r, sbom)

	sbom = filepath.Join(fx.Dir, "linger-sbom-"+randSuffix())
	r = cipackBuildIn(t, hostileWorkspace(t, "linger"), nil, "--image", fx.Registry.Host+"/pull/linger-in:latest",
		"--env", "HOSTILE=linger", "--sbom-dir", sbom)
	check("in-builder, /workspace bind", r, sbom)

	// As the build user: no namespace can be made, cipack ends the
	// orphans itself.
	m := hostileWorkspace(t, "linger-nonroot")
	sbom = filepath.Join(m.Workspace, "sbom-out")
	for _, dir := range []string{m.Workspace, m.Layers} {
		if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, fx.UID, fx.GID)
		}); err != nil {
			t.Fatal(err)
		}
	}
	id := strconv.Itoa
	cmd := testenv.InBuilder(context.Background(), m, "setpriv", "--reuid", id(fx.UID), "--regid", id(fx.GID), "--clear-groups",
		fx.Cipack, "build", "--path", "/workspace", "--source-root", "/workspace", "--sbom-dir", "/workspace/sbom-out",
		"--image", fx.Registry.Host+"/pull/linger-nonroot:latest", "--env", "HOSTILE=linger")
	cmd.Env = append(os.Environ(), "CNB_USER_ID="+id(fx.UID), "CNB_GROUP_ID="+id(fx.GID), "HOME=/tmp")
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		code = 1
	}
	check("in-builder as the build user", run{stderr: string(out), code: code}, sbom)
}

// A sandbox that cannot be made is its own error (exit 13) naming the
// cause, never a lifecycle exit code; nothing is pushed.
func TestSandboxFailuresAreTheirOwnError(t *testing.T) {
	needFixture(t)
	image := fx.Registry.Host + "/pull/nosandbox"
	for _, c := range []struct{ runtime, says string }{
		{"/nonexistent/runc", `OCI runtime "/nonexistent/runc" not found`},
		{"/bin/false", "false could not make the container"},
	} {
		r := pullBuildEnv(t, filepath.Join(fx.Dir, "nosandbox-cache-"+randSuffix()), nil, "--builder", fx.BuilderImage,
			"--image", image+":latest", "--oci-runtime", c.runtime)
		if r.code != exit.Sandbox || !strings.Contains(r.stderr, c.says) || strings.Contains(r.stderr, "lifecycle exited") {
			t.Errorf("--oci-runtime %s: exit %d, want %d saying %q\n%s", c.runtime, r.code, exit.Sandbox, c.says, r.stderr)
		}
	}
	if got := tags(t, image); len(got) != 0 {
		t.Errorf("a failed sandbox pushed %v", got)
	}
}

// Build code cannot choose the images the credential phases read: a
// buildpack that rewrites analyzed.toml to name an image only the CI's
// credentials can read (to have the exporter copy it into the pushed
// image) finds the file the trusted phases use read-only, and the image
// is based on the run image the user chose.
func TestBuildCodeCannotSteerTheCredentialPhases(t *testing.T) {
	needFixture(t)
	builder := hostileBuilderImage(t)
	auth, err := testenv.StartProxy(fx.Registry.Host, testenv.ProxyOptions{User: "ci", Password: "steer-s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer auth.Close()
	secretLayer, err := testenv.LayerFromFiles([]testenv.TarFile{{Name: "TOPSECRET.txt", Mode: 0o644, Body: []byte("private")}})
	if err != nil {
		t.Fatal(err)
	}
	secretImg, err := mutate.AppendLayers(testenv.MustPull(t, fx.RunImage), secretLayer)
	if err != nil {
		t.Fatal(err)
	}
	secret := auth.Host + "/private/secret:v1"
	if _, err := testenv.Push(context.Background(), fx.Registry.Host+"/private/secret:v1", secretImg); err != nil {
		t.Fatal(err)
	}
	secretDigest, _ := secretLayer.Digest()
	image := auth.Host + "/public/steer:latest"
	r := pullBuildEnv(t, filepath.Join(fx.Dir, "steer-cache-"+randSuffix()), []string{"CIPACK_REGISTRY_USERNAME=ci", "CIPACK_REGISTRY_PASSWORD=steer-s3cret"},
		"--builder", strings.Replace(builder, fx.Registry.Host, auth.Host, 1), "--run-image", strings.Replace(fx.RunImage, fx.Registry.Host, auth.Host, 1),
		"--image", image, "--env", "HOSTILE=analyzed", "--env", "HOSTILE_RUN="+secret)
	if !strings.Contains(r.stderr, "hostile: could not rewrite /analyzed/analyzed.toml") {
		t.Fatalf("the buildpack could write the analyzed.toml the credential phases read (exit %d)\n%s", r.code, r.stderr)
	}
	if r.code != 0 {
		t.Fatalf("build: exit %d\n%s", r.code, r.stderr)
	}
	pushed := strings.Replace(image, auth.Host, fx.Registry.Host, 1)
	layers, err := testenv.MustPull(t, pushed).Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		if d, _ := l.Digest(); d == secretDigest {
			t.Fatalf("the pushed image holds the private image's layer: build code chose the run image")
		}
	}
}

// --trust-builder runs the builder's own creator in one container, with
// the credentials: the build works and the image is the same as the
// split's for the same inputs (a deterministic builder: the shell
// buildpack alone).
func TestPullModeTrustBuilderRunsOneCreator(t *testing.T) {
	needFixture(t)
	bps, err := testenv.ExampleBuildpacks()
	if err != nil {
		t.Fatal(err)
	}
	cnb, err := testenv.MakeBuilder(filepath.Join(fx.Dir, "trust-cnb-"+randSuffix()), testenv.BuilderSpec{LifecycleDir: fx.LifecycleDir, RunImage: fx.RunImage, Buildpacks: bps[:1]})
	if err != nil {
		t.Fatal(err)
	}
	base, err := testenv.RunImage(testenv.RunImageSpec{UID: fx.UID, GID: fx.GID, Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	builder := fx.Registry.Host + "/pull/trust-builder:v1"
	if _, err := fx.PushBuilder(context.Background(), cnb, builder, base); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(fx.Dir, "trust-cache-"+randSuffix())
	args := []string{"--builder", builder, "--env", "GREETING=trust", "--platform-api", "0.15", "--output", "json"}
	trusted := pullBuildEnv(t, cache, nil, append(args, "--image", fx.Registry.Host+"/pull/trusted:latest", "--trust-builder")...)
	if trusted.code != 0 {
		t.Fatalf("--trust-builder: exit %d\n%s", trusted.code, trusted.stderr)
	}
	split := pullBuildEnv(t, cache, nil, append(args, "--image", fx.Registry.Host+"/pull/split:latest")...)
	if split.code != 0 {
		t.Fatalf("split: exit %d\n%s", split.code, split.stderr)
	}
	if a, b := mustJSON(t, trusted.stdout).Digest, mustJSON(t, split.stdout).Digest; a != b {
		t.Errorf("--trust-builder digest %s, split %s: the same inputs should give the same image", a, b)
	}
}

// `cipack resolve` (the action's cache-key step) reads a private builder
// with the credentials and options build takes, from CIPACK_* variables
// too; without credentials it fails with exit 3 naming the registry.
func TestResolveTakesBuildsRegistryOptions(t *testing.T) {
	needFixture(t)
	auth, err := testenv.StartProxy(fx.Registry.Host, testenv.ProxyOptions{User: "ci", Password: "resolve-s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer auth.Close()
	private := strings.Replace(fx.BuilderImage, fx.Registry.Host, auth.Host, 1)
	resolve := func(env ...string) run {
		cmd := exec.Command(fx.Cipack, "resolve", private)
		cmd.Env = append(os.Environ(), env...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		_ = cmd.Run()
		return run{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
	}
	r := resolve("CIPACK_REGISTRY_USERNAME=ci", "CIPACK_REGISTRY_PASSWORD=resolve-s3cret", "CIPACK_REGISTRY_TIMEOUT=10s")
	want := auth.Host + "/cipack-test/builder@" + testenv.MustHead(t, fx.BuilderImage).String()
	if r.code != 0 || strings.TrimSpace(r.stdout) != want {
		t.Fatalf("resolve with credentials: exit %d, %q, want %q\n%s", r.code, r.stdout, want, r.stderr)
	}
	if r = resolve(); r.code != exit.RegistryAuth {
		t.Fatalf("resolve without credentials: exit %d, want %d\n%s", r.code, exit.RegistryAuth, r.stderr)
	}
	if r = resolve("CIPACK_REGISTRY_TIMEOUT=0s"); r.code != exit.Usage || !strings.Contains(r.stderr, "--registry-timeout") {
		t.Fatalf("a bad CIPACK_REGISTRY_TIMEOUT: exit %d\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr+r.stdout, "resolve-s3cret") {
		t.Fatal("the password was printed")
	}
}

// --builder-blobs keeps the builder's compressed blobs as an OCI layout
// any user can read (what the action's actions/cache step saves): a build
// on a fresh store with those blobs restored downloads no layer, a
// corrupted blob is fetched again, and an unprivileged user can archive
// the directory.
func TestBuilderBlobsRestoreTheStoreWithoutDownloads(t *testing.T) {
	needFixture(t)
	layers, err := testenv.MustPull(t, fx.BuilderImage).Layers()
	if err != nil {
		t.Fatal(err)
	}
	layerDigests := map[string]bool{}
	for _, l := range layers {
		d, _ := l.Digest()
		layerDigests[d.String()] = true
	}
	proxy := testenv.StartLayerCounter(t, fx.Registry.Host, fx.BuilderImage)
	defer proxy.Close()
	builder := strings.Replace(fx.BuilderImage, fx.Registry.Host, proxy.Host, 1)
	fetched := 0
	blobs := filepath.Join(fx.Dir, "blobs-"+randSuffix())
	build := func(what string) {
		t.Helper()
		r := pullBuildEnv(t, filepath.Join(fx.Dir, "blobs-store-"+randSuffix()), nil, "--builder", builder, "--builder-blobs", blobs,
			"--image", fx.Registry.Host+"/pull/blobs:latest")
		if r.code != 0 || !strings.Contains(r.stderr, fmt.Sprintf("%d unpacked", len(layers))) {
			t.Fatalf("%s: exit %d\n%s", what, r.code, r.stderr)
		}
		fetched = proxy.Take()
	}
	build("first build")
	if fetched != len(layers) {
		t.Fatalf("first build fetched %d layer blobs, want %d", fetched, len(layers))
	}
	if out, err := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "tar", "-cf", "/dev/null", "-C", blobs, ".").CombinedOutput(); err != nil {
		t.Fatalf("an unprivileged user cannot archive the blobs: %v\n%s", err, out)
	}
	build("a fresh store on the kept blobs")
	if fetched != 0 {
		t.Fatalf("a fresh store on restored blobs downloaded %d layers, want 0", fetched)
	}
	// A restored cache is not trusted as is: a changed blob is fetched again.
	var victim string
	for d := range layerDigests {
		victim = filepath.Join(blobs, "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))
		break
	}
	if err := os.WriteFile(victim, []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	build("a fresh store on a tampered blob")
	if fetched != 1 {
		t.Fatalf("a tampered blob: %d layers downloaded, want 1", fetched)
	}
}

// recordedRunImage is the run image the image's lifecycle metadata
// records (what a later rebase watches).
func recordedRunImage(t testing.TB, image string) string {
	t.Helper()
	var md struct {
		RunImage struct {
			Image string `json:"image"`
		} `json:"runImage"`
	}
	if err := json.Unmarshal([]byte(testenv.MustConfig(t, image).Config.Labels["io.buildpacks.lifecycle.metadata"]), &md); err != nil {
		t.Fatal(err)
	}
	return md.RunImage.Image
}
