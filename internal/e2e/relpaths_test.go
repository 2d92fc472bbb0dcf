package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/testenv"
)

// Relative --path, --cache-dir and --sbom-dir mean the working directory
// cipack was started in, in pull mode (the helper works from its own
// directory, the runtime from the bundle's) and in the builder with the
// app bound at /workspace (after the namespace probe), run after run.
func TestRelativePathsLandInTheWorkingDirectory(t *testing.T) {
	needFixture(t)
	for _, mode := range []string{"pull", "in-builder"} {
		t.Run(mode, func(t *testing.T) {
			for i := range 3 {
				job := filepath.Join(fx.Dir, "relpaths-"+mode+"-"+randSuffix())
				root, err := testenv.ModuleRoot()
				if err != nil {
					t.Fatal(err)
				}
				if err := copyDir(filepath.Join(root, "examples", "app"), filepath.Join(job, "app")); err != nil {
					t.Fatal(err)
				}
				r := relativeBuild(t, mode, job, "--path", "app", "--source-root", ".", "--cache-dir", ".cache", "--sbom-dir", "sbom",
					"--image", fx.Registry.Host+"/relpaths/"+mode+":latest", "--run-image", fx.RunImage)
				if r.code != 0 {
					t.Fatalf("run %d: exit %d\n%s", i, r.code, r.stderr)
				}
				if mode == "in-builder" && !strings.Contains(r.stderr, "bound at /workspace") {
					t.Fatalf("run %d did not take the /workspace bind (the probe's path):\n%s", i, r.stderr)
				}
				for _, d := range []string{".cache", "sbom"} {
					if filesUnder(t, filepath.Join(job, d)) == 0 {
						t.Errorf("run %d: nothing in %s: the relative path was taken elsewhere\n%s", i, filepath.Join(job, d), r.stderr)
					}
				}
				for _, stray := range []string{"/.cache", "/sbom"} {
					if _, err := os.Stat(stray); err == nil {
						_ = os.RemoveAll(stray)
						t.Errorf("run %d: a relative path landed at %s", i, stray)
					}
				}
			}
		})
	}
}

// relativeBuild runs cipack build args from job: pulling the test
// builder, or in the builder's mounts with an empty /workspace to bind
// the app over.
func relativeBuild(t *testing.T, mode, job string, args ...string) run {
	t.Helper()
	var cmd *exec.Cmd
	if mode == "pull" {
		argv := append([]string{"build", "--cnb-dir", filepath.Join(fx.Dir, "no-cnb"), "--builder", fx.BuilderImage,
			"--builder-cache", filepath.Join(fx.Dir, "relpaths-store")}, args...)
		cmd = exec.Command(fx.Cipack, argv...)
		cmd.Env = os.Environ()
	} else {
		ws, layers := filepath.Join(job, "..", filepath.Base(job)+"-ws"), filepath.Join(job, "..", filepath.Base(job)+"-layers")
		chrootMkdir(t, ws)
		chrootMkdir(t, layers)
		cmd = testenv.InSandbox(context.Background(), []testenv.Bind{{Host: fx.BuilderDir, Path: "/cnb"}, {Host: layers, Path: "/layers"}, {Host: ws, Path: "/workspace"}},
			append([]string{fx.Cipack, "build"}, args...)...)
		cmd.Env = append(os.Environ(), "CNB_USER_ID="+strconv.Itoa(fx.UID), "CNB_GROUP_ID="+strconv.Itoa(fx.GID))
	}
	cmd.Dir = job
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	_ = cmd.Run()
	return run{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
}

// A relative TMPDIR means the working directory cipack was started in:
// the sandbox helper's work dir and the build's scratch directories are
// absolute, though the helper chdirs into its work dir and the runtime
// runs in the bundle (it failed "open w/root", exit 13).
func TestRelativeTempDirInPullMode(t *testing.T) {
	needFixture(t)
	job := filepath.Join(fx.Dir, "reltmp-"+randSuffix())
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := copyDir(filepath.Join(root, "examples", "app"), filepath.Join(job, "app")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(job, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", "tmp")
	r := relativeBuild(t, "pull", job, "--path", "app", "--source-root", ".",
		"--image", fx.Registry.Host+"/relpaths/tmpdir:latest", "--run-image", fx.RunImage)
	if r.code != 0 {
		t.Fatalf("exit %d with TMPDIR=tmp\n%s", r.code, r.stderr)
	}
}
