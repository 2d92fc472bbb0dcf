package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cipack/cipack/internal/testenv"
)

// BenchmarkAddedBuildpack measures what a buildpack from outside the
// builder costs (--buildpack DIR: fetched, checked, copied, the
// buildpacks dir of links assembled, order.toml written), side by side
// with its anchor: the bare creator given the same buildpack already in
// place (a buildpacks dir and an order.toml made once, as a builder that
// shipped it would have them). Warm cache, in the builder sandbox.
func BenchmarkAddedBuildpack(b *testing.B) {
	needFixture(b)
	ctx := context.Background()
	root, err := testenv.ModuleRoot()
	if err != nil {
		b.Fatal(err)
	}
	shell := filepath.Join(root, "examples", "buildpacks", "shell")
	image := fx.Registry.Host + "/bench/added:latest"
	cache := filepath.Join(fx.Dir, "cache-bench-added")
	args := []string{"--image", image, "--cache-dir", cache, "--platform-api", "0.15",
		"--buildpack", shell, "--buildpack", "cipack-examples/cache@0.0.1"}
	if r := cipackBuild(b, "bench-added-warmup", nil, args...); r.code != 0 {
		b.Fatalf("warm-up build: %d\n%s", r.code, r.stderr)
	}
	placed := filepath.Join(fx.Dir, "bench-added-buildpacks")
	if err := copyDir(shell, filepath.Join(placed, "cipack-examples_shell", "0.0.1")); err != nil {
		b.Fatal(err)
	}
	if err := os.Symlink("/cnb/buildpacks/cipack-examples_cache", filepath.Join(placed, "cipack-examples_cache")); err != nil && !os.IsExist(err) {
		b.Fatal(err)
	}
	order := filepath.Join(fx.Dir, "bench-added-order.toml")
	if err := os.WriteFile(order, []byte("[[order]]\n[[order.group]]\nid = \"cipack-examples/shell\"\nversion = \"0.0.1\"\n"+
		"[[order.group]]\nid = \"cipack-examples/cache\"\nversion = \"0.0.1\"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	platform := filepath.Join(fx.Dir, "platform-bench-added")
	if err := os.MkdirAll(filepath.Join(platform, "env"), 0o755); err != nil {
		b.Fatal(err)
	}
	creatorArgv := []string{"/cnb/lifecycle/creator",
		"-app", "/workspace", "-layers", "/layers", "-platform", platform,
		"-buildpacks", placed, "-order", order, "-launcher", "/cnb/lifecycle/launcher",
		"-run", "/cnb/run.toml", "-report", "/layers/report.toml",
		"-uid", strconv.Itoa(fx.UID), "-gid", strconv.Itoa(fx.GID), "-cache-dir", cache, image}
	sideBySide(b, func() (*exec.Cmd, *exec.Cmd) {
		c1 := fx.CipackBuild(ctx, workspace(b, "bench-added-cipack"), args...)
		c2 := testenv.InBuilder(ctx, workspace(b, "bench-added-creator"), creatorArgv...)
		c2.Env = append(os.Environ(), "CNB_PLATFORM_API=0.15")
		return c1, c2
	})
}
