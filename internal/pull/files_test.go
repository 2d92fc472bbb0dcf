package pull

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cipack/cipack/internal/testenv"
)

// hostDir is a directory outside every layer holding what a hostile
// builder would like cipack to read: a canary order.toml.
func hostDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, "order.toml"), []byte("CANARY from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// layerDirs makes n empty layer trees, lowest first.
func layerDirs(t *testing.T, n int) Files {
	t.Helper()
	top := t.TempDir()
	var out Files
	for i := range n {
		d := filepath.Join(top, "layers", string(rune('a'+i)))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func put(t *testing.T, layer, rel, body string) {
	t.Helper()
	p := filepath.Join(layer, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func putLink(t *testing.T, layer, rel, target string) {
	t.Helper()
	p := filepath.Join(layer, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// A link in a layer never leads Files to the host: not an absolute one,
// not one with enough "..", not one in the middle of a path.
func TestFilesNeverReadsTheHost(t *testing.T) {
	host := hostDir(t)
	for name, plant := range map[string]func(t *testing.T, f Files){
		"absolute /cnb":      func(t *testing.T, f Files) { putLink(t, f[1], "cnb", host) },
		"dotdot /cnb":        func(t *testing.T, f Files) { putLink(t, f[1], "cnb", strings.Repeat("../", 20)+host[1:]) },
		"link to the file":   func(t *testing.T, f Files) { putLink(t, f[1], "cnb/order.toml", host+"/order.toml") },
		"two hops":           func(t *testing.T, f Files) { putLink(t, f[0], "opt", host); putLink(t, f[1], "cnb", "/opt") },
		"relative from deep": func(t *testing.T, f Files) { putLink(t, f[1], "cnb", "x/../../../../"+host[1:]) },
	} {
		t.Run(name, func(t *testing.T) {
			f := layerDirs(t, 2)
			plant(t, f)
			got, err := f.ReadFile("/cnb/order.toml")
			if strings.Contains(string(got), "CANARY") {
				t.Fatal("Files read the host's file through a layer's link")
			}
			if !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("err = %v, want not-exist (the builder has no such file)", err)
			}
		})
	}
}

// The same, through a pulled builder: a layer shipping /cnb -> a host
// directory.
func TestPulledBuilderLinkStaysInside(t *testing.T) {
	testenv.NeedRoot(t)
	host := hostDir(t)
	reg, c := testRegistry(t)
	ref := push(t, reg, "linky", tarLayer(t, file("etc/motd", "hi", 0o644)), tarLayer(t, link("cnb", host)))
	b := prepare(t, c, ref, filepath.Join(t.TempDir(), "cache"))
	if got, err := Files(b.Layers).ReadFile("/cnb/order.toml"); err == nil || strings.Contains(string(got), "CANARY") {
		t.Fatalf("read %q, %v: want an error, never the host's file", got, err)
	}
}

// Links resolve across layers against the merged root, as the container
// sees them.
func TestFilesResolvesLinksAcrossLayers(t *testing.T) {
	f := layerDirs(t, 3)
	put(t, f[0], "opt/cnb/order.toml", "good")
	putLink(t, f[1], "cnb", "/opt/cnb")
	putLink(t, f[2], "opt/cnb/lifecycle", "../../usr/lib/lifecycle")
	put(t, f[0], "usr/lib/lifecycle/creator", "creator")
	for p, want := range map[string]string{
		"/cnb/order.toml":                            "good",
		"cnb/order.toml":                             "good",
		"/../../cnb/./order.toml":                    "good",
		"/cnb/lifecycle/creator":                     "creator",
		"/cnb/lifecycle/../../lib/lifecycle/creator": "creator", // ".." of the link's target, as the kernel does
	} {
		got, err := f.ReadFile(p)
		if err != nil || string(got) != want {
			t.Errorf("%s: %q %v, want %q", p, got, err, want)
		}
	}
	putLink(t, f[2], "loop", "/loop")
	if _, err := f.Stat("/loop/x"); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("loop: %v, want ELOOP", err)
	}
	put(t, f[2], "file", "x")
	if _, err := f.Stat("/file/x"); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("through a file: %v, want ENOTDIR", err)
	}
}

// Whiteouts and opaque directories hide lower layers' files, and a
// directory in a higher layer hides a lower non-directory, as overlayfs
// does.
func TestFilesHonoursWhiteoutsAndOpaqueDirs(t *testing.T) {
	testenv.NeedRoot(t) // mknod, trusted.* xattrs
	f := layerDirs(t, 3)
	put(t, f[0], "cnb/order.toml", "old")
	put(t, f[0], "cnb/buildpacks/a/buildpack.toml", "a")
	put(t, f[0], "cnb/kept", "kept")
	put(t, f[0], "etc/run.toml", "lower")
	put(t, f[1], "cnb/.keep", "")
	if err := unix.Mknod(filepath.Join(f[1], "cnb/order.toml"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	put(t, f[2], "cnb/buildpacks/b/buildpack.toml", "b")
	if err := unix.Setxattr(filepath.Join(f[2], "cnb/buildpacks"), opaqueXattr, []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	put(t, f[2], "etc/run.toml/x", "a directory now")
	for p, want := range map[string]string{
		"/cnb/order.toml":                  "",
		"/cnb/buildpacks/a/buildpack.toml": "",
		"/cnb/buildpacks/b/buildpack.toml": "b",
		"/cnb/kept":                        "kept",
		"/etc/run.toml/x":                  "a directory now",
	} {
		got, err := f.ReadFile(p)
		if want == "" {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: %q %v, want it hidden", p, got, err)
			}
			continue
		}
		if err != nil || string(got) != want {
			t.Errorf("%s: %q %v, want %q", p, got, err, want)
		}
	}
}

// Reads are bounded: a FIFO is refused without blocking, a device or a
// directory is refused, a large file is refused.
func TestFilesReadsAreBounded(t *testing.T) {
	f := layerDirs(t, 1)
	if err := syscall.Mkfifo(filepath.Join(f[0], "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	putLink(t, f[0], "null", "/dev/null") // the builder's /dev/null: absent
	put(t, f[0], "big", strings.Repeat("x", maxFileRead+1))
	put(t, f[0], "dir/x", "")
	waitFor(t, 5*time.Second, func() {
		for _, p := range []string{"/fifo", "/null", "/big", "/dir"} {
			if got, err := f.ReadFile(p); err == nil {
				t.Errorf("%s: read %d bytes, want a refusal", p, len(got))
			}
		}
	})
	if fi, err := f.Stat("/fifo"); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("stat fifo: %v %v", fi, err)
	}
}
