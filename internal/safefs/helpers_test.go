package safefs_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
)

// Builders of hostile input (plant*) and assertions (want*) shared by the
// tests.

var nothing = func(*testing.T, *scene) {}

func both(fs ...func(*testing.T, *scene)) func(*testing.T, *scene) {
	return func(t *testing.T, s *scene) {
		for _, f := range fs {
			f(t, s)
		}
	}
}

func plantFile(rel, body string) func(*testing.T, *scene) {
	return func(t *testing.T, s *scene) {
		p := filepath.Join(s.app, rel)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(body), 0o644))
	}
}

// plantLink links app/rel to target ("" = the canary, absolute).
func plantLink(rel, target string) func(*testing.T, *scene) {
	return func(t *testing.T, s *scene) {
		if target == "" {
			target = s.canary()
		}
		must(t, os.Symlink(target, filepath.Join(s.app, rel)))
	}
}

func plantHardLink(rel string) func(*testing.T, *scene) {
	return func(t *testing.T, s *scene) { must(t, os.Link(s.canary(), filepath.Join(s.app, rel))) }
}

func plantFIFO(rel string) func(*testing.T, *scene) {
	return func(t *testing.T, s *scene) { must(t, syscall.Mkfifo(filepath.Join(s.app, rel), 0o666)) }
}

func plantDir(rel string) func(*testing.T, *scene) {
	return func(t *testing.T, s *scene) { must(t, os.Mkdir(filepath.Join(s.app, rel), 0o755)) }
}

func plantSparse(rel string, size int64) func(*testing.T, *scene) {
	return func(t *testing.T, s *scene) {
		f, err := os.Create(filepath.Join(s.app, rel))
		must(t, err)
		must(t, f.Truncate(size))
		must(t, f.Close())
	}
}

// plantDevice makes a character device like /dev/zero (1,5) in the app.
func plantDevice(rel string) func(*testing.T, *scene) {
	return func(t *testing.T, s *scene) {
		err := syscall.Mknod(filepath.Join(s.app, rel), syscall.S_IFCHR|0o666, 1<<8|5)
		if errors.Is(err, syscall.EPERM) {
			t.Skip("mknod is not allowed here, even as root (no CAP_MKNOD)")
		}
		must(t, err)
	}
}

func wantData(want string) func(*testing.T, *scene) {
	return func(t *testing.T, s *scene) {
		if string(s.data) != want {
			t.Fatalf("read %q, want %q", s.data, want)
		}
	}
}

func wantLink(t *testing.T, p, target string) {
	t.Helper()
	if got, err := os.Readlink(p); err != nil || got != target {
		t.Fatalf("%s: link to %q (%v), want %q", p, got, err, target)
	}
}

func wantContent(t *testing.T, p, want string) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("%s is not a regular file: %v", p, err)
	}
	if b, _ := os.ReadFile(p); string(b) != want {
		t.Fatalf("%s holds %q, want %q", p, b, want)
	}
}

func wantAbsent(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s exists (%v), want it left out", p, err)
	}
}

func wantList(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: %v, want %v", what, got, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
