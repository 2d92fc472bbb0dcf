package testenv

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// RunTests is the TestMain of the packages that run real parts. With
// -short (make unit: the one documented opt-out) only the tests that need
// no fixture run and *fx stays nil. Otherwise the run needs root (mount
// namespaces, chroot and dropping to the build user): without it the
// package fails, saying so, rather than pass having run nothing real. A
// Fixture is made under a fresh directory, before (run after the directory
// exists) prepares more, and all is removed after.
func RunTests(m *testing.M, name string, fx **Fixture, before func(dir string) error) int {
	if testing.Short() {
		fmt.Printf("%s: -short: the end-to-end tests are skipped\n", name)
		return m.Run()
	}
	if os.Geteuid() != 0 {
		fmt.Fprintf(os.Stderr, "%s: the end-to-end tests need root (mount namespaces, chroot, the build user): run `make test` as root, or `make unit` (-short) to run only the unit tests\n", name)
		return 1
	}
	dir, err := os.MkdirTemp("", "cipack-"+name+"-")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err == nil && before != nil {
		err = before(dir)
	}
	var f *Fixture
	if err == nil {
		f, err = NewFixture(context.Background(), dir)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s setup: %v\n", name, err)
		return 1
	}
	*fx = f
	rootBefore := RootEntries()
	code := m.Run()
	f.Close()
	os.RemoveAll(dir)
	// Mount points made for sandboxes go again; anything else new at the
	// host's root fails the run.
	if err := RemoveMountPoints(rootBefore); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	return code
}

// NeedRoot fails t when the process is not root, saying so: a test that
// needs root must not pass by not running. With -short (make unit) it
// skips instead, the one documented opt-out.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if testing.Short() {
		t.Skip("needs root; skipped in -short mode")
	}
	t.Fatal("this test needs root (it changes file owners or mounts): run `make test` as root, or `make unit` to skip it")
}
