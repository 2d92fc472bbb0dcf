package acttest

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/testenv"
)

var (
	fx  *testenv.Fixture
	act string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testenv.RunTests(m, "acttest", &fx, func(dir string) (err error) {
		act, err = buildAct(dir)
		return err
	}))
}

// buildAct builds act from the version this module's go.mod pins, cached
// under that version.
func buildAct(string) (string, error) {
	ctx := context.Background()
	here, err := os.Getwd()
	if err != nil {
		return "", err
	}
	dir, err := testenv.ToolDir(ctx, here, "github.com/nektos/act")
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "act"), testenv.BuildTool(ctx, here, dir, "act", "github.com/nektos/act")
}

// goEnv keeps the workflow's `go build` (the action's build-from-source
// path) on this machine's module and build caches.
var goEnv = func() []string {
	out, err := exec.Command("go", "env", "GOPATH", "GOMODCACHE", "GOCACHE").Output()
	if err != nil {
		return nil
	}
	v := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(v) != 3 {
		return nil
	}
	return []string{"GOPATH=" + v[0], "GOMODCACHE=" + v[1], "GOCACHE=" + v[2]}
}()

func needFixture(t *testing.T) {
	if fx == nil {
		t.Skip("skipped in -short mode (make unit)")
	}
}

// repo is an app repository made for one workflow run: the example app at
// its root, workflows under .github/workflows, committed with git.
var repos int

type repo struct {
	dir       string
	plainHost bool
	// cacheAction and cacheServer serve actions/cache with the real
	// library and act's cache server storing under cacheServer.
	cacheAction, cacheServer string
}

func newRepo(t *testing.T, files map[string]string) *repo {
	t.Helper()
	repos++
	dir := filepath.Join(fx.Dir, fmt.Sprintf("repo-%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), repos))
	if err := os.MkdirAll(filepath.Join(dir, ".github", "workflows"), 0o755); err != nil {
		t.Fatal(err)
	}
	rootDir, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	app, err := os.ReadFile(filepath.Join(rootDir, "examples", "app", "app.sh"))
	if err != nil {
		t.Fatal(err)
	}
	files["app.sh"] = string(app)
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.Contains(name, "/bin/") {
			mode = 0o755 // a buildpack's executables
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"-c", "user.email=ci@example.invalid", "-c", "user.name=ci", "commit", "-qm", "app"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return &repo{dir: dir}
}

// onPlainHost makes the repo's runs happen on this host as it is, like a
// runs-on: ubuntu-latest job: no /cnb, no builder container.
func (r *repo) onPlainHost() *repo { r.plainHost = true; return r }

// example reads a workflow from examples/github. In host mode (no
// container engine) the job's container: is dropped: the test runs act
// itself inside a stand-in for the builder (its /cnb mounted, its
// CNB_USER_ID/CNB_GROUP_ID set), which is what the container provides.
func example(t *testing.T, name string, hostMode bool) string {
	t.Helper()
	rootDir, _ := testenv.ModuleRoot()
	b, err := os.ReadFile(filepath.Join(rootDir, "examples", "github", name))
	if err != nil {
		t.Fatal(err)
	}
	wf := string(b)
	if hostMode {
		wf = regexp.MustCompile(`(?m)^    container:\n(      .*\n)+`).ReplaceAllString(wf, "")
		if strings.Contains(wf, "container:") {
			t.Fatalf("could not drop the container from %s", name)
		}
	}
	return wf
}

type actRun struct {
	out  string
	code int
}

// run runs act on the repo for event, in host mode, inside the builder
// stand-in, with cipack/cipack@v1 served from this working tree.
func (r *repo) run(t *testing.T, workflow, event string, args ...string) actRun {
	t.Helper()
	rootDir, _ := testenv.ModuleRoot()
	layers, err := os.MkdirTemp(fx.Dir, "layers-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(layers, 0o755)
	argv := append([]string{act, event,
		"-W", filepath.Join(".github", "workflows", workflow),
		"-P", "ubuntu-latest=-self-hosted",
		"--no-cache-server", "--action-offline-mode",
		"--local-repository", "cipack/cipack@v1=" + rootDir,
		"--local-repository", "actions/cache@v5=" + cacheStub(),
		"--local-repository", "actions/attest-build-provenance@v3=" + standIn("attest-build-provenance"),
		"--local-repository", "actions/attest-sbom@v3=" + standIn("attest-sbom"),
		"--var", "CIPACK_INSECURE_REGISTRIES=",
	}, args...)
	// Every host-mode run caches with the real library and act's cache
	// server (a server per repo); the print-only stub serves only the
	// container-job test, whose builder image has no node.
	if r.cacheAction == "" {
		r.cacheAction, r.cacheServer = realCacheAction(t), r.dir+"-cache-server"
	}
	if r.cacheAction != "" {
		for i, a := range argv {
			switch {
			case a == "--no-cache-server":
				argv[i] = "--cache-server-path=" + r.cacheServer
			case a == "actions/cache@v5="+cacheStub():
				argv[i] = "actions/cache@v5=" + r.cacheAction
			}
		}
		argv = append(argv, "--cache-server-addr", "127.0.0.1")
	}
	if !r.plainHost {
		argv = append(argv, "--env", "CNB_USER_ID="+strconv.Itoa(fx.UID), "--env", "CNB_GROUP_ID="+strconv.Itoa(fx.GID))
	}
	// act keeps the job's workspace under its cache path: it must be
	// traversable by the build user, as /__w is in a container job.
	cache := filepath.Join(fx.Dir, "act-cache")
	home := filepath.Join(fx.Dir, "home")
	for _, d := range []string{cache, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	argv = append(argv, "--action-cache-path", cache)
	cmd := testenv.InSandbox(context.Background(), []testenv.Bind{{Host: fx.BuilderDir, Path: "/cnb"}, {Host: layers, Path: "/layers"}}, argv...)
	if r.plainHost {
		// A plain runner: no builder anywhere, cipack pulls it.
		cmd = exec.Command(argv[0], argv[1:]...)
	}
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "ACT_DISABLE_VERSION_CHECK=1", "HOME="+home)
	cmd.Env = append(cmd.Env, goEnv...)
	out, err := cmd.CombinedOutput()
	res := actRun{out: string(out)}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return res
}

func eventFile(t *testing.T, v any) string {
	t.Helper()
	b, _ := json.Marshal(v)
	p := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var pushedLine = regexp.MustCompile(`pushed (\S+)@(sha256:[0-9a-f]{64}) \(digest (sha256:[0-9a-f]{64})\)`)

// pushed returns the image-ref and digest outputs the example printed.
func pushed(t *testing.T, out string) (string, string) {
	t.Helper()
	m := pushedLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the workflow printed no image-ref/digest outputs:\n%s", out)
	}
	if m[2] != m[3] {
		t.Fatalf("image-ref digest %s and digest output %s differ", m[2], m[3])
	}
	return m[1], m[3]
}

func TestBuildExampleOnPush(t *testing.T) {
	needFixture(t)
	image := fx.Registry.Host + "/gha/app:latest"
	r := newRepo(t, map[string]string{".github/workflows/build.yml": example(t, "build-in-builder.yml", true)})
	res := r.run(t, "build.yml", "push", "--var", "CIPACK_IMAGE="+image, "--var", "CIPACK_BUILDER="+fx.BuilderImage, "-s", "GITHUB_TOKEN=ghs_not_a_real_token")
	if res.code != 0 {
		t.Fatalf("act exited %d:\n%s", res.code, res.out)
	}
	repoName, digest := pushed(t, res.out)
	if repoName != fx.Registry.Host+"/gha/app" || testenv.MustHead(t, image).String() != digest {
		t.Fatalf("outputs say %s@%s, the registry has %s", repoName, digest, testenv.MustHead(t, image).String())
	}
	for _, want := range []string{"Summary - ### cipack build", "| Digest | `" + digest + "` |", "| cipack-examples/shell | 0.0.1 |", "| exporting |",
		"::group::detecting", "cipack: building from"} {
		if !strings.Contains(res.out, want) {
			t.Errorf("act output lacks %q", want)
		}
	}
	// The sha tag from the example's tags input was written too.
	if !regexp.MustCompile(`/gha/app:[0-9a-f]{40}`).MatchString(res.out) {
		t.Errorf("no commit-sha tag in the outputs")
	}
	if strings.Contains(res.out, "ghs_not_a_real_token") {
		t.Error("the GitHub token reached the log")
	}
}

// A workflow of the test's own, using the action as a consumer does.
func consumer(with string) string {
	return `name: consumer
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v5
      - id: cipack
        uses: cipack/cipack@v1
        with:
` + with + `
      - name: Outputs
        # Outputs reach the script through env:, never ${{ }} inside it.
        env:
          IMAGE_REF: ${{ steps.cipack.outputs.image-ref }}
          DIGEST: ${{ steps.cipack.outputs.digest }}
        run: echo "pushed $IMAGE_REF (digest $DIGEST)"
`
}

func TestBuildActionBadInputIsAnnotated(t *testing.T) {
	needFixture(t)
	image := fx.Registry.Host + "/gha/bad:latest"
	r := newRepo(t, map[string]string{".github/workflows/c.yml": consumer("          image: " + image + "\n          env: |\n            GOOD=1\n            NOEQUALS\n")})
	res := r.run(t, "c.yml", "push")
	if res.code == 0 {
		t.Fatalf("the step should fail:\n%s", res.out)
	}
	if !strings.Contains(res.out, "::error title=input env::") || !strings.Contains(res.out, "NOEQUALS is not set") {
		t.Fatalf("no error annotation naming the env input:\n%s", res.out)
	}
	if !strings.Contains(res.out, "exit status 2") {
		t.Errorf("want cipack's usage exit code 2:\n%s", res.out)
	}
}

func TestBuildActionMasksRegistryPassword(t *testing.T) {
	needFixture(t)
	const password = "pa55-Very-Secret-9f3c"
	proxy, err := testenv.StartProxy(fx.Registry.Host, testenv.ProxyOptions{User: "ci-bot", Password: password})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	image := proxy.Host + "/gha/private:latest"
	r := newRepo(t, map[string]string{".github/workflows/c.yml": consumer(
		"          image: " + image + "\n          registry-username: ci-bot\n          registry-password: ${{ secrets.REGISTRY_PASSWORD }}\n")})
	res := r.run(t, "c.yml", "push", "-s", "REGISTRY_PASSWORD="+password)
	if res.code != 0 {
		t.Fatalf("act exited %d:\n%s", res.code, res.out)
	}
	if _, digest := pushed(t, res.out); testenv.MustHead(t, fx.Registry.Host+"/gha/private:latest").String() != digest {
		t.Fatal("the digest output is not the registry's")
	}
	if strings.Contains(res.out, password) {
		t.Fatalf("the password reached the output:\n%s", res.out)
	}
	// Wrong password: the build fails before the lifecycle, naming the registry problem.
	r2 := newRepo(t, map[string]string{".github/workflows/c.yml": consumer(
		"          image: " + image + "\n          registry-username: ci-bot\n          registry-password: ${{ secrets.REGISTRY_PASSWORD }}\n")})
	res = r2.run(t, "c.yml", "push", "-s", "REGISTRY_PASSWORD=wrong-"+password)
	if res.code == 0 || !strings.Contains(res.out, "registry refused") || strings.Contains(res.out, "===> ANALYZING") {
		t.Fatalf("a refused password must fail early:\n%s", res.out)
	}
	if strings.Contains(res.out, "wrong-"+password) {
		t.Fatal("the wrong password reached the output")
	}
}

// cacheStub is the stand-in for actions/cache (testdata/cache-stub): the
// real action needs GitHub's cache service, and act runs offline here.
func cacheStub() string {
	p, _ := filepath.Abs(filepath.Join("testdata", "cache-stub"))
	return p
}

// The README's first example, on runs-on: ubuntu-latest with no
// container: the action pulls the builder (pull mode), keys its cache on
// the builder's digest, and the image's working directory is /workspace,
// not act's checkout path.
func TestBuildExampleOnAPlainRunnerPullMode(t *testing.T) {
	needFixture(t)
	image := fx.Registry.Host + "/gha-pull/app:latest"
	r := newRepo(t, map[string]string{".github/workflows/build.yml": example(t, "build.yml", false)}).onPlainHost()
	res := r.run(t, "build.yml", "push", "--var", "CIPACK_IMAGE="+image, "--var", "CIPACK_BUILDER="+fx.BuilderImage)
	if res.code != 0 {
		t.Fatalf("act exited %d:\n%s", res.code, res.out)
	}
	repoName, digest := pushed(t, res.out)
	if repoName+":latest" != image {
		t.Fatalf("image-ref names %s", repoName)
	}
	if !strings.Contains(res.out, "unpacked") || !strings.Contains(res.out, "real cache: restore key=cipack-blobs-Linux-") {
		t.Fatalf("no pull-mode unpack or cache key in the log:\n%s", res.out)
	}
	ref, _ := name.ParseReference(image)
	d, err := remote.Head(ref)
	if err != nil || d.Digest.String() != digest {
		t.Fatalf("registry %v %v, output %s", d, err, digest)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if cf.Config.WorkingDir != "/workspace" {
		t.Fatalf("WORKDIR %q, want /workspace", cf.Config.WorkingDir)
	}
	// The commit the workflow ran on is the image's project metadata.
	sha, err := exec.Command("git", "-C", r.dir, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	if label := cf.Config.Labels["io.buildpacks.project.metadata"]; !strings.Contains(label, strings.TrimSpace(string(sha))) || !strings.Contains(label, `"type":"git"`) {
		t.Fatalf("project metadata %q, want the commit %s", label, sha)
	}
}

// standIn is a local stand-in (testdata/NAME) for a GitHub action that
// needs GitHub's services: it prints the inputs it was given.
func standIn(name string) string {
	p, _ := filepath.Abs(filepath.Join("testdata", name))
	return p
}

// The attest example: the build's name and digest outputs are the
// registry's, and the SBOM handed to attest-sbom is the build's CycloneDX
// file (GitHub's attest actions are local stand-ins here).
func TestAttestExample(t *testing.T) {
	needFixture(t)
	image := fx.Registry.Host + "/gha-attest/app:latest"
	r := newRepo(t, map[string]string{".github/workflows/attest.yml": example(t, "attest.yml", false)}).onPlainHost()
	res := r.run(t, "attest.yml", "push", "--var", "CIPACK_IMAGE="+image, "--var", "CIPACK_BUILDER="+fx.BuilderImage)
	if res.code != 0 {
		t.Fatalf("act exited %d:\n%s", res.code, res.out)
	}
	ref, _ := name.ParseReference(image)
	d, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	subject := ref.Context().Name() + "@" + d.Digest.String()
	for _, want := range []string{"provenance stand-in - subject=" + subject, "sbom stand-in - subject=" + subject + " sbom=cyclonedx"} {
		if !strings.Contains(res.out, want) {
			t.Errorf("output lacks %q:\n%s", want, res.out)
		}
	}
	// Nothing changed and skip-unchanged is on: the job built nothing,
	// so it attests nothing.
	res = r.run(t, "attest.yml", "push", "--var", "CIPACK_IMAGE="+image, "--var", "CIPACK_BUILDER="+fx.BuilderImage, "--var", "CIPACK_SKIP_UNCHANGED=true")
	if res.code != 0 || !strings.Contains(res.out, "the lifecycle does not run") {
		t.Fatalf("the unchanged rerun did not skip: act exited %d:\n%s", res.code, res.out)
	}
	if strings.Contains(res.out, "provenance stand-in") || strings.Contains(res.out, "sbom stand-in") {
		t.Fatalf("a skipped build was attested:\n%s", res.out)
	}
}

// The examples lower-case the image name they derive from GitHub's
// repository (registries refuse capitals; GitHub names may have them).
func TestExampleLowerCasesTheRepositoryName(t *testing.T) {
	needFixture(t)
	r := newRepo(t, map[string]string{".github/workflows/build.yml": example(t, "build.yml", false)}).onPlainHost()
	res := r.run(t, "build.yml", "push", "--var", "CIPACK_REGISTRY="+fx.Registry.Host, "--var", "CIPACK_BUILDER="+fx.BuilderImage,
		"--env", "GITHUB_REPOSITORY=Cipack-Test/Mixed-Case-App")
	if res.code != 0 {
		t.Fatalf("act exited %d:\n%s", res.code, res.out)
	}
	if repoName, _ := pushed(t, res.out); repoName != fx.Registry.Host+"/cipack-test/mixed-case-app" {
		t.Fatalf("pushed to %s, want the lower-cased repository name", repoName)
	}
}
