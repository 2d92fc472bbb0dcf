package safefs_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cipack/cipack/internal/safefs"
)

func TestWriteFileAtomicReplacesAndSetsModeExactly(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	must(t, os.WriteFile(p, []byte("old content, longer"), 0o600))
	if err := safefs.WriteFileAtomic(p, []byte("new"), 0o755); err != nil {
		t.Fatal(err)
	}
	wantContent(t, p, "new")
	wantMode(t, p, 0o755)
	if names, _ := os.ReadDir(dir); len(names) != 1 {
		t.Errorf("left behind: %v", names)
	}
	if err := safefs.WriteFileAtomic(dir, []byte("x"), 0o644); err == nil {
		t.Error("replaced a directory")
	}
}

func TestWriteFileAtomicRelativePath(t *testing.T) {
	t.Chdir(t.TempDir())
	must(t, os.Mkdir("sub", 0o755))
	if err := safefs.WriteFileAtomic("sub/../sub/f", []byte("rel"), 0o640); err != nil {
		t.Fatal(err)
	}
	wantContent(t, "sub/f", "rel")
	wantMode(t, "sub/f", 0o640)
}

func TestCreateFresh(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	p := filepath.Join(t.TempDir(), "f")
	must(t, os.WriteFile(p, []byte("previous"), 0o600))
	f, err := safefs.CreateFresh(p, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("fresh")
	must(t, err)
	must(t, f.Close())
	wantContent(t, p, "fresh")
	wantMode(t, p, 0o644)
	if _, err := safefs.CreateFresh(filepath.Join(t.TempDir(), "missing", "f"), 0o644); err == nil {
		t.Error("created a file in a missing directory")
	}
}

func TestCopyFileAtomicMakesParents(t *testing.T) {
	src := filepath.Join(t.TempDir(), "self")
	must(t, os.WriteFile(src, []byte("binary"), 0o700))
	dst := filepath.Join(t.TempDir(), "cipack", "bin", "cipack")
	if err := safefs.CopyFileAtomic(src, dst, 0o755); err != nil {
		t.Fatal(err)
	}
	wantContent(t, dst, "binary")
	wantMode(t, dst, 0o755)
	// Again over the first copy (a re-run of the step).
	if err := safefs.CopyFileAtomic(src, dst, 0o755); err != nil {
		t.Fatal(err)
	}
}

func wantMode(t *testing.T, p string, want os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != want {
		t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
	}
}
