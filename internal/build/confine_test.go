package build

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/scratch"
	"github.com/cipack/cipack/internal/testenv"
)

func TestResolveAppStaysInsideTheSourceRoot(t *testing.T) {
	ws := t.TempDir()
	app := filepath.Join(ws, "app")
	outside := t.TempDir()
	for _, d := range []string{app, filepath.Join(ws, "other")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(app, filepath.Join(ws, "link-in")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(ws, "link-out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(ws, "link-etc")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, root string
		want       string // resolved dir, or "" for a refusal
		msg        string
	}{
		{app, ws, app, ""},
		{ws, ws, ws, ""},
		{filepath.Join(ws, "link-in"), ws, app, ""}, // the lifecycle gets the real dir, not the link
		{filepath.Join(app, "..", "..", filepath.Base(outside)), ws, "", "outside the source root"},
		{filepath.Join(ws, "link-out"), ws, "", "outside the source root"},
		{filepath.Join(ws, "link-etc"), ws, "", "system directory"},
		{"/etc", "/", "", "system directory"},
		{"/", "/", "", "system directory"},
		{"/usr/share", "/", "", "system directory"},
		{"/proc/self", "/", "", "system directory"},
		{"/tmp", "/", "", "system directory"},
		{app, filepath.Join(ws, "missing"), "", "--source-root"},
	} {
		got, err := ResolveApp(c.path, c.root)
		if c.want != "" {
			if err != nil || got != c.want {
				t.Errorf("ResolveApp(%q, %q) = %q, %v; want %q", c.path, c.root, got, err, c.want)
			}
			continue
		}
		if exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("ResolveApp(%q, %q) = %q, %v; want a usage error with %q", c.path, c.root, got, err, c.msg)
		}
	}
}

// As root the build gets a copy of the app owned by the build user: the
// checkout keeps its owners, modes and files, and the copy reaches
// nothing outside it, not through a symlink nor a hard link.
func TestPrepareAppLeavesTheCheckoutAsItWas(t *testing.T) {
	testenv.NeedRoot(t)
	root := t.TempDir()
	app := filepath.Join(root, "app")
	outside := filepath.Join(root, "outside")
	for _, d := range []string{app, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	secret := filepath.Join(outside, "shadow")
	if err := os.WriteFile(secret, []byte("root-only"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(app, "app.sh"), []byte("echo hi"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(secret, filepath.Join(app, "hardlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(app, "symlink-file")); err != nil {
		t.Fatal(err)
	}
	before := testenv.TreeState(t, root)
	var log strings.Builder
	dir, cleanup, err := prepareApp("", app, nil, 65534, 65534, true, &log)
	if err != nil {
		t.Fatal(err)
	}
	if after := testenv.TreeState(t, root); after != before {
		t.Fatalf("the checkout changed:\nbefore %s\nafter  %s", before, after)
	}
	owner := func(p string) uint32 {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Uid
	}
	for _, p := range []string{dir, filepath.Join(dir, "app.sh"), filepath.Join(dir, "symlink-file")} {
		if owner(p) != 65534 {
			t.Errorf("%s belongs to uid %d, want the build user", p, owner(p))
		}
	}
	if target, err := os.Readlink(filepath.Join(dir, "symlink-file")); err != nil || target != secret {
		t.Errorf("the symlink should be copied as a link: %q %v", target, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "hardlink")); !os.IsNotExist(err) {
		t.Errorf("a hard-linked file was copied (its other link may be outside the app): %v", err)
	}
	if !strings.Contains(log.String(), "hard-linked") {
		t.Errorf("the log should say the hard link was left out: %s", log.String())
	}
	cleanup()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the copy outlived its cleanup: %v", err)
	}
	if after := testenv.TreeState(t, root); after != before {
		t.Fatalf("the checkout changed after cleanup")
	}
}

func TestLifecycleEnvKeepsNoSecrets(t *testing.T) {
	in := []string{"PATH=/bin", "HOME=/root", "LC_ALL=C", "HTTPS_PROXY=http://p", "CIPACK_REGISTRY_PASSWORD=pw",
		"CIPACK_GITHUB_TOKEN=ghs", "GITHUB_TOKEN=ghs", "INPUT_REGISTRY-PASSWORD=pw", "NPM_TOKEN=npm", "ACTIONS_RUNTIME_TOKEN=a",
		"CNB_PLATFORM_API=0.9", "CNB_REGISTRY_AUTH={}", "CNB_USER_ID=1000", "CNB_EXPERIMENTAL_MODE=warn"}
	got := strings.Join(lifecycleEnv(in), " ")
	want := "PATH=/bin HOME=/root LC_ALL=C HTTPS_PROXY=http://p CNB_USER_ID=1000 CNB_EXPERIMENTAL_MODE=warn"
	if got != want {
		t.Errorf("lifecycle env\n got %s\nwant %s", got, want)
	}
}

func TestStalePlatformDirsAreRemoved(t *testing.T) {
	tmp := t.TempDir()
	dead := filepath.Join(tmp, platformPrefix+"999999999-1")
	alive := filepath.Join(tmp, platformPrefix+"1-1") // pid 1 is always there
	for _, d := range []string{dead, alive} {
		if err := os.MkdirAll(filepath.Join(d, "env"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	scratch.Sweep(tmp, platformPrefix)
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the dir of a dead run is still there: %v", err)
	}
	if _, err := os.Stat(alive); err != nil {
		t.Errorf("the dir of a live run was removed: %v", err)
	}
}
