package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cipack/cipack/internal/testenv"
)

// pullBuild runs `cipack build --builder` on the host: no /cnb, no
// sandbox made by the test; cipack pulls the builder and sandboxes the
// lifecycle itself.
func pullBuild(t *testing.T, cache string, args ...string) (run, time.Duration) {
	t.Helper()
	ws := filepath.Join(fx.Dir, "pull-ws-"+randSuffix())
	root, _ := testenv.ModuleRoot()
	if err := copyDir(filepath.Join(root, "examples", "app"), ws); err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"build", "--path", ws, "--source-root", ws, "--cnb-dir", filepath.Join(fx.Dir, "no-cnb"), "--builder-cache", cache}, args...)
	cmd := exec.Command(fx.Cipack, argv...)
	cmd.Env = os.Environ()
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	_ = cmd.Run()
	return run{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}, time.Since(start)
}

func copyDir(src, dst string) error {
	out, err := exec.Command("cp", "-a", src+"/.", dst+"/").CombinedOutput()
	if err != nil {
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if out, err = exec.Command("cp", "-a", src+"/.", dst+"/").CombinedOutput(); err != nil {
			return &exec.ExitError{Stderr: out}
		}
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
