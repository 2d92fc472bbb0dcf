package sandbox

import (
	"os"
	"path/filepath"
	"testing"
)

// A builder's links on the way to a mount target are replaced inside the
// root, never followed: the canary outside keeps its files and gets none.
func TestMakeTargetsNeverFollowsTheBuildersLinks(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	canary := filepath.Join(outside, "ptmx")
	if err := os.WriteFile(canary, []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"dev":       outside,                           // absolute, to an existing host dir
		"workspace": "../../../../" + outside,          // relative, climbing out
		"tmp":       filepath.Join(outside, "missing"), // dangling
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(canary, filepath.Join(root, "etc", "resolv.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "layers"), []byte("a file where a dir belongs"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostFile := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(hostFile, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Binds: []Bind{{Host: t.TempDir(), Path: "/workspace"}, {Host: t.TempDir(), Path: "/layers"},
		{Host: hostFile, Path: "/etc/resolv.conf", ReadOnly: true}}}
	if err := makeTargets(root, Config(spec, root, "t").Mounts); err != nil {
		t.Fatal(err)
	}
	// Cleared for the runtime, which makes the mount points inside the root.
	for _, p := range []string{"dev", "tmp", "workspace", "layers", "etc/resolv.conf"} {
		if fi, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v): the runtime would follow or trip on it", p, fi)
		}
	}
	if fi, err := os.Lstat(filepath.Join(root, "etc")); err != nil || !fi.IsDir() {
		t.Errorf("etc, a real directory, should stay: %v", err)
	}
	entries, _ := os.ReadDir(outside)
	if b, _ := os.ReadFile(canary); string(b) != "host" || len(entries) != 1 {
		t.Fatalf("the host dir the links named changed: %v, %q", entries, b)
	}
}
