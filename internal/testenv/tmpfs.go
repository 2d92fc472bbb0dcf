package testenv

import (
	"os/exec"
	"testing"
)

// Tmpfs mounts a tmpfs of size (as mount's size= takes it: "1M") on a
// fresh directory and returns it; the test's cleanup unmounts it. It is
// how tests fill a disk for real: a write past size fails with ENOSPC.
// It needs root.
func Tmpfs(t testing.TB, size string) string {
	t.Helper()
	NeedRoot(t)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v: %s", dir, err, out)
	}
	// Registered after TempDir's removal, so it runs first.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}
