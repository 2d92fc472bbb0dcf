package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// LifecyclePhases are the names the multi-call lifecycle binary answers to.
var LifecyclePhases = []string{"analyzer", "detector", "restorer", "builder", "exporter", "creator", "rebaser", "extender"}

// CacheDir is where built tools are kept between runs: $CIPACK_TEST_TOOLS
// (not CIPACK_CACHE_DIR: that is cipack build's own --cache-dir, which the
// tests pass their environment to),
// else the user cache dir.
func CacheDir() string {
	if d := os.Getenv("CIPACK_TEST_TOOLS"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "cipack")
	}
	return filepath.Join(os.TempDir(), "cipack-cache")
}

// ModuleRoot is the directory of cipack's own go.mod, also when called
// from a nested test module (tekton/tektontest, action/acttest).
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside cipack's module")
	}
	for dir := filepath.Dir(mod); ; dir = filepath.Dir(dir) {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(b), "module github.com/cipack/cipack\n") {
			return dir, nil
		}
		if dir == filepath.Dir(dir) {
			return "", fmt.Errorf("no cipack go.mod above %s", mod)
		}
	}
}

// LifecycleBinaries returns a directory holding `lifecycle` and `launcher`
// built from the module version cipack's go.mod pins, building them once
// (about 2 minutes cold) and reusing them after.
func LifecycleBinaries(ctx context.Context) (string, error) {
	dir, err := ToolDir(ctx, "", "github.com/buildpacks/lifecycle")
	if err != nil {
		return "", err
	}
	for _, bin := range []string{"lifecycle", "launcher"} {
		if err := BuildTool(ctx, "", dir, bin, "github.com/buildpacks/lifecycle/cmd/"+bin); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// CraneBinary returns crane built from the pinned go-containerregistry
// module (a benchmark anchor), cached like the lifecycle.
func CraneBinary(ctx context.Context) (string, error) {
	dir, err := ToolDir(ctx, "", "github.com/google/go-containerregistry")
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "crane"), BuildTool(ctx, "", dir, "crane", "github.com/google/go-containerregistry/cmd/crane")
}

// LifecycleVersion is the lifecycle version cipack's go.mod pins (the
// one the tests build), or "unknown".
func LifecycleVersion() string {
	v, err := ModuleVersion(context.Background(), "", "github.com/buildpacks/lifecycle")
	if err != nil {
		return "unknown"
	}
	return v
}

// ToolDir is the cache directory of a tool built from module, keyed by the
// version the go.mod of moduleDir (cipack's own when empty) pins, read
// from go itself: a version bump in go.mod is a new directory, never a
// stale binary under an old name.
func ToolDir(ctx context.Context, moduleDir, module string) (string, error) {
	v, err := ModuleVersion(ctx, moduleDir, module)
	if err != nil {
		return "", err
	}
	return filepath.Join(CacheDir(), filepath.Base(module)+"-"+v), nil
}

// ModuleVersion is the version of module that the go.mod of moduleDir
// (cipack's own when empty) selects.
func ModuleVersion(ctx context.Context, moduleDir, module string) (string, error) {
	if moduleDir == "" {
		root, err := ModuleRoot()
		if err != nil {
			return "", err
		}
		moduleDir = root
	}
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", module)
	cmd.Dir = moduleDir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", module, err)
	}
	v := strings.TrimSpace(string(out))
	if v == "" {
		return "", fmt.Errorf("%s is not required by %s/go.mod", module, moduleDir)
	}
	return v, nil
}

// BuildTool builds pkg (pinned by the go.mod of moduleDir, cipack's own
// when empty) as dir/name unless it is there already. Concurrent callers
// (go test runs packages in parallel) wait on a file lock instead of
// building twice.
func BuildTool(ctx context.Context, moduleDir, dir, name, pkg string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	unlock, err := lock(filepath.Join(dir, ".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	bin := filepath.Join(dir, name)
	if _, err := os.Stat(bin); err == nil {
		return nil
	}
	if moduleDir == "" {
		root, err := ModuleRoot()
		if err != nil {
			return err
		}
		moduleDir = root
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin+".tmp", pkg)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %w\n%s", pkg, err, out)
	}
	return os.Rename(bin+".tmp", bin)
}

// BuildCipack builds the cipack binary into dir and returns its path.
// The lifecycle and launcher built from the pinned module go next to it,
// as `make build` and the release lay them out: pull mode's trusted
// lifecycle.
func BuildCipack(ctx context.Context, dir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	lc, err := LifecycleBinaries(ctx)
	if err != nil {
		return "", err
	}
	for _, bin := range []string{"lifecycle", "launcher"} {
		b, err := os.ReadFile(filepath.Join(lc, bin))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, bin), b, 0o755); err != nil {
			return "", err
		}
	}
	out := filepath.Join(dir, "cipack")
	// As the release builds it (make release): the start-up benchmark
	// compares it with crane built the same way.
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./cmd/cipack")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build cipack: %w\n%s", err, b)
	}
	return out, nil
}

func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}
