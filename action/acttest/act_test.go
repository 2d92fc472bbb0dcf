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

	"github.com/cipack/cipack/internal/testenv"
)

var (
	fx  *testenv.Fixture
	act string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() || os.Geteuid() != 0 {
		fmt.Println("acttest: running workflows needs root; only the static checks run")
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "cipack-act-")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err == nil {
		act, err = buildAct(dir)
	}
	if err == nil {
		fx, err = testenv.NewFixture(context.Background(), dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "acttest setup:", err)
		os.Exit(1)
	}
	code := m.Run()
	fx.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildAct builds act from the version this module pins, cached.
func buildAct(string) (string, error) {
	dir := filepath.Join(testenv.CacheDir(), "act-v0.2.89")
	bin := filepath.Join(dir, "act")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", bin+".tmp", "github.com/nektos/act")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build act: %v\n%s", err, out)
	}
	return bin, os.Rename(bin+".tmp", bin)
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
		t.Skip("needs root")
	}
}

// repo is an app repository made for one workflow run: the example app at
// its root, workflows under .github/workflows, committed with git.
type repo struct {
	dir string
}

func newRepo(t *testing.T, files map[string]string) *repo {
	t.Helper()
	dir := filepath.Join(fx.Dir, "repo-"+strings.ReplaceAll(t.Name(), "/", "-"))
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
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
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
		"--var", "CIPACK_INSECURE_REGISTRIES=",
		"--env", "CNB_USER_ID=" + strconv.Itoa(fx.UID),
		"--env", "CNB_GROUP_ID=" + strconv.Itoa(fx.GID),
	}, args...)
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

func TestBuildExampleOnPush(t *testing.T) {
	needFixture(t)
	image := fx.Registry.Host + "/gha/app:latest"
	r := newRepo(t, map[string]string{".github/workflows/build.yml": example(t, "build.yml", true)})
	res := r.run(t, "build.yml", "push", "--var", "CIPACK_IMAGE="+image, "--var", "CIPACK_BUILDER="+fx.BuilderImage, "-s", "GITHUB_TOKEN=ghs_not_a_real_token")
	t.Log(res.out)
	if res.code != 0 {
		t.Fatalf("act exited %d", res.code)
	}
}
