package acttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cipack/cipack/internal/testenv"
)

// The npm packages the real-cache action runs on: @actions/cache 4.0.5
// speaks the v1 cache API (ACTIONS_CACHE_SERVICE_V2 unset) that act's
// built-in cache server implements.
const cacheLibs = "@actions/cache@4.0.5 @actions/core@1.11.1"

var realCacheOnce struct {
	sync.Once
	dir string
	err error
}

// realCacheAction returns a directory holding testdata/real-cache with
// its npm packages installed (once, in the tool cache).
func realCacheAction(t *testing.T) string {
	t.Helper()
	realCacheOnce.Do(func() {
		dir := filepath.Join(testenv.CacheDir(), "real-cache-"+strings.NewReplacer("@", "", "/", "-", " ", "_").Replace(cacheLibs))
		src, _ := filepath.Abs(filepath.Join("testdata", "real-cache"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			realCacheOnce.err = err
			return
		}
		for _, f := range []string{"action.yml", "restore.js", "save.js", "restore/action.yml", "restore/index.js", "save/action.yml", "save/index.js"} {
			if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755); err != nil {
				realCacheOnce.err = err
				return
			}
			b, err := os.ReadFile(filepath.Join(src, f))
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, f), b, 0o644)
			}
			if err != nil {
				realCacheOnce.err = err
				return
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "@actions", "cache")); err == nil {
			realCacheOnce.dir = dir
			return
		}
		if _, err := exec.LookPath("npm"); err != nil {
			realCacheOnce.err = err
			return
		}
		cmd := exec.Command("npm", append([]string{"install", "--no-audit", "--no-fund", "--silent", "--prefix", dir}, strings.Fields(cacheLibs)...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			realCacheOnce.err = &exec.ExitError{Stderr: out}
			return
		}
		realCacheOnce.dir = dir
	})
	if realCacheOnce.err != nil {
		t.Fatalf("the real-cache action (npm install %s) is missing: %v", cacheLibs, realCacheOnce.err)
	}
	return realCacheOnce.dir
}

// The action's cache with the real @actions/cache library and act's own
// cache server: a second run of the README's first workflow, on a fresh
// runner temp dir, restores the builder's blobs (no layer downloaded)
// and the build cache (the lifecycle reuses the cached layer) and gives
// the same image; what is saved an unprivileged user can archive.
func TestActionCacheRestoresTheBuilderWithTheRealCacheLibrary(t *testing.T) {
	needFixture(t)
	proxy := testenv.StartLayerCounter(t, fx.Registry.Host, fx.BuilderImage)
	defer proxy.Close()
	builder := strings.Replace(fx.BuilderImage, fx.Registry.Host, proxy.Host, 1)
	layers, err := testenv.MustPull(t, fx.BuilderImage).Layers()
	if err != nil {
		t.Fatal(err)
	}
	// GitHub's runner temp dir has the same path on every runner, and the
	// cache's version hashes the paths; act's is random per run. So the
	// workflow names a fixed cache-dir, emptied before each run: a fresh
	// runner.
	cacheDir := filepath.Join(fx.Dir, "runner-temp-"+strings.ReplaceAll(t.Name(), "/", "-"), "cipack-cache")
	wf := strings.Replace(example(t, "build.yml", false), "          builder: ", "          cache-dir: "+cacheDir+"\n          builder: ", 1)
	if !strings.Contains(wf, "cache-dir: ") {
		t.Fatal("the example's with: block moved")
	}
	r := newRepo(t, map[string]string{".github/workflows/build.yml": wf}).onPlainHost()
	r.cacheAction, r.cacheServer = realCacheAction(t), filepath.Join(fx.Dir, "act-cache-server-"+strings.ReplaceAll(t.Name(), "/", "-"))
	image := fx.Registry.Host + "/gha-cache/app:latest"
	run := func(what string) (string, int) {
		t.Helper()
		proxy.Take()
		if err := os.RemoveAll(filepath.Dir(cacheDir)); err != nil {
			t.Fatal(err)
		}
		res := r.run(t, "build.yml", "push", "--var", "CIPACK_IMAGE="+image, "--var", "CIPACK_BUILDER="+builder)
		if res.code != 0 || !strings.Contains(res.out, "real cache: restore") {
			t.Fatalf("%s: act exited %d:\n%s", what, res.code, res.out)
		}
		return res.out, proxy.Take()
	}
	out, n := run("first run")
	if n != len(layers) || !strings.Contains(out, "real cache: saved key=cipack-blobs-") || !strings.Contains(out, "real cache: saved key=cipack-build-") {
		t.Fatalf("first run: %d layer downloads (want %d), or nothing saved:\n%s", n, len(layers), out)
	}
	_, firstDigest := pushed(t, out)
	out, n = run("second run")
	if _, d := pushed(t, out); d != firstDigest {
		t.Errorf("the build on the restored cache gave %s, the first %s: want the same image", d, firstDigest)
	}
	// What the action saves, the runner's user (not root) can archive.
	for _, d := range []string{"blobs", "build"} {
		if out, err := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
			"tar", "-cf", "/dev/null", "-C", filepath.Join(cacheDir, d), ".").CombinedOutput(); err != nil {
			t.Errorf("an unprivileged user cannot archive the saved %s: %v\n%s", d, err, out)
		}
	}
	if n != 0 {
		t.Fatalf("second run downloaded %d layers, want 0 (the builder's blobs come from the cache):\n%s", n, out)
	}
	if !strings.Contains(out, "reused cached layer") {
		t.Fatalf("second run: the lifecycle did not reuse the restored build cache:\n%s", out)
	}
}
