package safefs_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cipack/cipack/internal/safefs"
	"github.com/cipack/cipack/internal/testenv"
)

// tree lays out a small app: files with modes (setuid, sticky), a link, an
// empty directory, and old mtimes.
func tree(t *testing.T) string {
	src := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(src, "bin"), 0o755))
	must(t, os.MkdirAll(filepath.Join(src, "empty"), 0o755))
	must(t, os.MkdirAll(filepath.Join(src, "logs", "old"), 0o755))
	files := map[string]os.FileMode{
		"app.sh":         0o755 | os.ModeSetuid,
		"bin/tool":       0o750 | os.ModeSetgid,
		"readonly.txt":   0o444,
		"logs/a.log":     0o644,
		"logs/old/b.log": 0o600,
		"README.md":      0o644,
	}
	for name, mode := range files {
		p := filepath.Join(src, name)
		must(t, os.WriteFile(p, []byte(name), 0o600))
		must(t, os.Chmod(p, mode))
	}
	must(t, os.Chmod(filepath.Join(src, "logs"), 0o777|os.ModeSticky))
	must(t, os.Symlink("bin/tool", filepath.Join(src, "tool")))
	old := time.Date(2010, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, p := range []string{"app.sh", "bin", "logs/old", "empty"} {
		must(t, os.Chtimes(filepath.Join(src, p), old, old))
	}
	return src
}

func TestCopyTreeKeepsModesTimesAndLinks(t *testing.T) {
	src := tree(t)
	dst := filepath.Join(t.TempDir(), "copy")
	stats, err := safefs.CopyTree(src, dst, safefs.CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Files != 6 || stats.Dirs != 4 || stats.Links != 1 || stats.Bytes == 0 {
		t.Errorf("stats %+v", stats)
	}
	for name, want := range map[string]os.FileMode{
		"app.sh":       0o755, // setuid stripped
		"bin/tool":     0o750, // setgid stripped
		"readonly.txt": 0o444,
		"logs/old":     os.ModeDir | 0o755,
		"logs":         os.ModeDir | 0o777 | os.ModeSticky, // sticky kept
		"empty":        os.ModeDir | 0o755,
	} {
		fi, err := os.Lstat(filepath.Join(dst, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), want)
		}
	}
	for _, name := range []string{"app.sh", "bin", "logs/old", "empty"} {
		a, _ := os.Stat(filepath.Join(src, name))
		b, _ := os.Stat(filepath.Join(dst, name))
		if !a.ModTime().Equal(b.ModTime()) {
			t.Errorf("%s: mtime %v, want %v", name, b.ModTime(), a.ModTime())
		}
	}
	wantLink(t, filepath.Join(dst, "tool"), "bin/tool")
	wantContent(t, filepath.Join(dst, "logs/old/b.log"), "logs/old/b.log")
}

func TestCopyTreeFilterAndPrune(t *testing.T) {
	src := tree(t)
	dst := filepath.Join(t.TempDir(), "copy")
	var seen []string
	filter := func(rel string, isDir bool) bool {
		seen = append(seen, rel)
		return rel != "logs" && (isDir || filepath.Ext(rel) != ".txt")
	}
	if _, err := safefs.CopyTree(src, dst, safefs.CopyOptions{Filter: filter, PruneEmptyDirs: true}); err != nil {
		t.Fatal(err)
	}
	for _, rel := range seen {
		if filepath.Dir(rel) == "logs" || filepath.Dir(rel) == "logs/old" {
			t.Errorf("the filter was asked about %s inside a left-out directory", rel)
		}
	}
	wantAbsent(t, filepath.Join(dst, "logs"))
	wantAbsent(t, filepath.Join(dst, "readonly.txt"))
	wantAbsent(t, filepath.Join(dst, "empty")) // pruned: nothing inside
	wantContent(t, filepath.Join(dst, "bin/tool"), "bin/tool")
}

func TestCopyTreeWantsAFreshDestination(t *testing.T) {
	src := tree(t)
	dst := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dst, "x"), nil, 0o644))
	if _, err := safefs.CopyTree(src, dst, safefs.CopyOptions{}); err == nil {
		t.Fatal("copied into a non-empty directory")
	}
	if _, err := safefs.CopyTree(src, t.TempDir(), safefs.CopyOptions{}); err != nil {
		t.Fatalf("an empty existing directory: %v", err)
	}
}

func TestCopyTreeChown(t *testing.T) {
	testenv.NeedRoot(t)
	src := tree(t)
	dst := filepath.Join(t.TempDir(), "copy")
	if _, err := safefs.CopyTree(src, dst, safefs.CopyOptions{Chown: true, UID: 1234, GID: 5678}); err != nil {
		t.Fatal(err)
	}
	err := filepath.Walk(dst, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 1234 || st.Gid != 5678 {
			t.Errorf("%s: owned by %d:%d", p, st.Uid, st.Gid)
		}
		return nil
	})
	must(t, err)
}

// Another filesystem mounted inside the app (a bind mount of the host's
// /) is not entered.
func TestCopyTreeSkipsMounts(t *testing.T) {
	testenv.NeedRoot(t)
	src := tree(t)
	mnt := filepath.Join(src, "mnt")
	must(t, os.Mkdir(mnt, 0o755))
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skip("mounting is not allowed here (no CAP_SYS_ADMIN)")
		}
		t.Fatal(err)
	}
	defer syscall.Unmount(mnt, syscall.MNT_DETACH)
	must(t, os.WriteFile(filepath.Join(mnt, "host-file"), []byte("x"), 0o644))
	dst := filepath.Join(t.TempDir(), "copy")
	stats, err := safefs.CopyTree(src, dst, safefs.CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantList(t, "mounts", stats.Mounts, "mnt")
	wantAbsent(t, filepath.Join(dst, "mnt"))
}
