package acttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cipack/cipack/internal/testenv"
)

// The npm packages the real-artifact actions run on: GitHub's own
// artifact library, 1.x (see testdata/real-artifact/upload/index.js for
// why not 2.x with act v0.2.89).
const artifactLibs = "@actions/artifact@1.1.2 @actions/core@1.11.1"

var realArtifactOnce struct {
	sync.Once
	dir string
	err error
}

// realArtifactActions returns a directory holding testdata/real-artifact
// (upload/ and download/) with its npm packages installed, once, in the
// tool cache.
func realArtifactActions(t *testing.T) string {
	t.Helper()
	realArtifactOnce.Do(func() {
		dir := filepath.Join(testenv.CacheDir(), "real-artifact-"+strings.NewReplacer("@", "", "/", "-", " ", "_").Replace(artifactLibs))
		for _, f := range []string{"upload/action.yml", "upload/index.js", "download/action.yml", "download/index.js"} {
			b, err := os.ReadFile(filepath.Join("testdata", "real-artifact", f))
			if err == nil {
				err = os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755)
			}
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, f), b, 0o644)
			}
			if err != nil {
				realArtifactOnce.err = err
				return
			}
		}
		// Each action is its own repository to act (it copies the action's
		// directory alone): each gets its node_modules.
		for _, a := range []string{"upload", "download"} {
			if _, err := os.Stat(filepath.Join(dir, a, "node_modules", "@actions", "artifact")); err == nil {
				continue
			}
			cmd := exec.Command("npm", append([]string{"install", "--no-audit", "--no-fund", "--silent", "--prefix", filepath.Join(dir, a)}, strings.Fields(artifactLibs)...)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				realArtifactOnce.err = &exec.ExitError{Stderr: out}
				return
			}
		}
		realArtifactOnce.dir = dir
	})
	if realArtifactOnce.err != nil {
		t.Fatalf("the real-artifact actions (npm install %s) are missing: %v", artifactLibs, realArtifactOnce.err)
	}
	return realArtifactOnce.dir
}

// The sharded rebase example: a matrix of 4 shards over a fleet of 5
// images, each uploading its report through the real artifact library to
// act's artifact server, and a merge job that sums them: every image
// swept once, the rebased ones moved, one summary for the fleet.
func TestRebaseShardedExample(t *testing.T) {
	needFixture(t)
	h := fx.Registry.Host
	run := h + "/gha-shards/run:latest"
	pushRunImage(t, run, "v1")
	var apps []string
	old := map[string]string{}
	fleet := "images:\n"
	for i := 0; i < 5; i++ {
		app := h + "/gha-shards/app-" + strconv.Itoa(i) + ":latest"
		old[app] = buildApp(t, app, run)
		apps = append(apps, app)
		fleet += "  - image: " + app + "\n"
	}
	pushRunImage(t, run, "v2")
	r := newRepo(t, map[string]string{
		".github/workflows/rebase-sharded.yml": example(t, "rebase-sharded.yml", true),
		".github/cipack-fleet.yaml":            fleet,
	})
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	artifacts := realArtifactActions(t)
	res := r.run(t, "rebase-sharded.yml", "schedule",
		"--artifact-server-path", filepath.Join(r.dir+"-artifacts"), "--artifact-server-addr", "127.0.0.1", "--artifact-server-port", strconv.Itoa(port),
		"--local-repository", "actions/upload-artifact@v4="+filepath.Join(artifacts, "upload"),
		"--local-repository", "actions/download-artifact@v4="+filepath.Join(artifacts, "download"))
	if res.code != 0 {
		t.Fatalf("act exited %d\n%s", res.code, res.out)
	}
	for _, app := range apps {
		if testenv.MustHead(t, app).String() == old[app] {
			t.Errorf("%s was not rebased", app)
		}
	}
	if got := strings.Count(res.out, "real artifact: uploaded rebase-report-"); got != 4 {
		t.Errorf("%d shard reports uploaded, want 4", got)
	}
	for _, want := range []string{"real artifact: downloaded 4 artifacts", "5 images: 0 up-to-date, 5 rebase, 0 rebuild, 0 skipped, 0 error"} {
		if !strings.Contains(res.out, want) {
			t.Errorf("the run's log lacks %q:\n%s", want, res.out)
		}
	}
}
