package safefs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
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

// layerEntry is one tar entry of a test layer: a header and its body.
type layerEntry struct {
	h    tar.Header
	body string
}

func reg(name, body string, mode int64) layerEntry {
	return layerEntry{h: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode}, body: body}
}
func dirEntry(name string, mode int64) layerEntry {
	return layerEntry{h: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: mode}}
}
func symlinkEntry(name, target string) layerEntry {
	return layerEntry{h: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}}
}
func hardlinkEntry(name, target string) layerEntry {
	return layerEntry{h: tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target}}
}
func special(name string, typ byte) layerEntry {
	return layerEntry{h: tar.Header{Name: name, Typeflag: typ, Mode: 0o666, Devmajor: 1, Devminor: 3}}
}

// layerTar writes entries as a tar stream; the placeholder "{canary}" in
// names and link targets becomes the canary directory's absolute path.
func layerTar(t *testing.T, canary string, entries []layerEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.h
		h.Name = strings.ReplaceAll(h.Name, "{canary}", canary)
		h.Linkname = strings.ReplaceAll(h.Linkname, "{canary}", canary)
		h.Size = int64(len(e.body))
		h.ModTime = time.Unix(1_000_000_000, 0)
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layerScene is a layer directory with a canary directory beside it: what
// the canary holds must come out of every extraction unchanged.
type layerScene struct {
	dir, canary string
	before      map[string]string
}

func newLayerScene(t *testing.T) *layerScene {
	t.Helper()
	top := t.TempDir()
	s := &layerScene{dir: filepath.Join(top, "work", "layer"), canary: filepath.Join(top, "canary")}
	for _, d := range []string{s.dir, filepath.Join(s.canary, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"file", "secret", "sub/inner"} {
		if err := os.WriteFile(filepath.Join(s.canary, f), []byte("canary "+f), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Unix(1_500_000_000, 0)
	for _, f := range []string{"file", "secret", "sub/inner", "sub", "."} {
		if err := os.Chtimes(filepath.Join(s.canary, f), old, old); err != nil {
			t.Fatal(err)
		}
	}
	s.before = layerSnapshot(t, top, s.dir)
	return s
}

// layerSnapshot records every entry under top except skip: type, mode,
// owner, mtime, link target and content.
func layerSnapshot(t *testing.T, top, skip string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		v := fmt.Sprintf("%v %d:%d %d", fi.Mode(), st.Uid, st.Gid, fi.ModTime().UnixNano())
		if fi.Mode()&fs.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			v += " -> " + l
		} else if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			v += " " + string(b)
		}
		out[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (s *layerScene) assertCanaryIntact(t *testing.T) {
	t.Helper()
	after := layerSnapshot(t, filepath.Dir(filepath.Dir(s.dir)), s.dir)
	for p, v := range s.before {
		if after[p] != v {
			t.Errorf("%s changed: %q -> %q", p, v, after[p])
		}
	}
	for p, v := range after {
		if _, ok := s.before[p]; !ok && p != filepath.Dir(s.dir) {
			t.Errorf("%s appeared outside the layer: %q", p, v)
		}
	}
	for _, p := range []string{"/etc/cipack-escaped", "/cipack-escaped", "/tmp/cipack-escaped"} {
		if _, err := os.Lstat(p); err == nil {
			os.RemoveAll(p)
			t.Errorf("%s was written on the host", p)
		}
	}
}

type extractCase struct {
	name    string
	entries []layerEntry
	lim     Limits
	// wantErr, when set, is a substring of the error, which must wrap
	// ErrHostile (or ErrLimit when wantLimit).
	wantErr   string
	wantLimit bool
	check     func(t *testing.T, dir string, st ExtractStats)
}

// A hostile layer cannot reach outside its directory, and what a builder
// legitimately ships (setuid files, sticky dirs, owners, whiteouts, opaque
// dirs, hard links) comes out exactly as the image has it.
func TestExtractLayerHostileTable(t *testing.T) {
	testenv.NeedRoot(t) // owners, mknod, trusted.* xattrs
	for _, c := range extractCases() {
		t.Run(c.name, func(t *testing.T) {
			s := newLayerScene(t)
			data := layerTar(t, s.canary, c.entries)
			st, err := ExtractLayer(context.Background(), bytes.NewReader(data), s.dir, c.lim)
			s.assertCanaryIntact(t)
			if c.wantErr != "" {
				want := ErrHostile
				if c.wantLimit {
					want = ErrLimit
				}
				if err == nil || !errors.Is(err, want) || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %v containing %q", err, want, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.Read != int64(len(data)) {
				t.Errorf("read %d of %d bytes: the stream must be read to its end", st.Read, len(data))
			}
			if c.check != nil {
				c.check(t, s.dir, st)
			}
		})
	}
}

func extractCases() []extractCase {
	return []extractCase{
		{name: "dotdot", entries: []layerEntry{reg("../../canary/escaped", "x", 0o644)}, wantErr: `"../../canary/escaped": the name leads outside`},
		{name: "dotdot inside a path", entries: []layerEntry{reg("a/../../canary/escaped", "x", 0o644)}, wantErr: "leads outside"},
		{name: "absolute dotdot", entries: []layerEntry{reg("/../canary/escaped", "x", 0o644)}, wantErr: "leads outside"},
		{name: "absolute names stay inside", entries: []layerEntry{reg("/etc/cipack-escaped", "x", 0o644), reg("{canary}/file", "overwritten?", 0o644)},
			check: func(t *testing.T, dir string, _ ExtractStats) {
				wantFile(t, filepath.Join(dir, "etc/cipack-escaped"), "x")
			}},
		{name: "write through an absolute symlink", entries: []layerEntry{symlinkEntry("link", "{canary}"), reg("link/escaped", "x", 0o644)}, wantErr: "link is a symbolic link"},
		{name: "write through a relative symlink", entries: []layerEntry{symlinkEntry("x", "../../canary"), reg("x/file", "x", 0o644)}, wantErr: "symbolic link"},
		{name: "symlink to root then write", entries: []layerEntry{symlinkEntry("a", "/"), reg("a/etc/cipack-escaped", "x", 0o644)}, wantErr: "symbolic link"},
		{name: "directory through a symlink", entries: []layerEntry{symlinkEntry("x", "../../canary"), dirEntry("x/sub/new", 0o755)}, wantErr: "symbolic link"},
		{name: "whiteout through a symlink", entries: []layerEntry{symlinkEntry("x", "../../canary"), reg("x/.wh.file", "", 0o644)}, wantErr: "symbolic link"},
		{name: "opaque through a symlink", entries: []layerEntry{symlinkEntry("x", "../../canary"), reg("x/.wh..wh..opq", "", 0o644)}, wantErr: "symbolic link"},
		{name: "a file replaces a symlink, never written through", entries: []layerEntry{symlinkEntry("l", "../../canary/file"), reg("l", "mine", 0o644)},
			check: func(t *testing.T, dir string, _ ExtractStats) { wantFile(t, filepath.Join(dir, "l"), "mine") }},
		{name: "a directory replaces a symlink", entries: []layerEntry{symlinkEntry("l", "../../canary"), dirEntry("l", 0o755), reg("l/file", "mine", 0o644)},
			check: func(t *testing.T, dir string, _ ExtractStats) { wantFile(t, filepath.Join(dir, "l/file"), "mine") }},
		{name: "whiteout of dotdot", entries: []layerEntry{reg("a/b", "x", 0o644), reg(".wh...", "", 0o644)}, wantErr: `whiteout of ".."`},
		{name: "whiteout of dot", entries: []layerEntry{reg("a/b", "x", 0o644), reg("a/.wh..", "", 0o644)}, wantErr: `whiteout of "."`},
		{name: "whiteout of nothing", entries: []layerEntry{reg(".wh.", "", 0o644)}, wantErr: `whiteout of ""`},
		{name: "whiteout", entries: []layerEntry{reg("a/b", "x", 0o644), reg("a/.wh.b", "", 0o644), reg("a/.wh.gone", "", 0o644)},
			check: func(t *testing.T, dir string, st ExtractStats) {
				wantWhiteout(t, filepath.Join(dir, "a/b"))
				wantWhiteout(t, filepath.Join(dir, "a/gone"))
				if st.Whiteouts != 2 {
					t.Errorf("whiteouts = %d", st.Whiteouts)
				}
			}},
		{name: "opaque directory", entries: []layerEntry{dirEntry("a", 0o755), reg("a/.wh..wh..opq", "", 0o644), reg("a/.wh..wh.plnk", "", 0o644)},
			check: func(t *testing.T, dir string, st ExtractStats) {
				buf := make([]byte, 8)
				n, err := unix.Lgetxattr(filepath.Join(dir, "a"), opaqueXattr, buf)
				if err != nil || string(buf[:n]) != "y" {
					t.Errorf("opaque xattr = %q, %v", buf[:n], err)
				}
				if names, _ := os.ReadDir(filepath.Join(dir, "a")); len(names) != 0 || st.Skipped != 1 {
					t.Errorf("a holds %v, skipped %d: the reserved names are not files", names, st.Skipped)
				}
			}},
		{name: "hard link out", entries: []layerEntry{hardlinkEntry("h", "../../canary/secret")}, wantErr: "leads outside"},
		{name: "hard link to an absolute host path", entries: []layerEntry{hardlinkEntry("h", "{canary}/secret")}, wantErr: "not a"},
		{name: "hard link to nothing", entries: []layerEntry{hardlinkEntry("h", "missing")}, wantErr: "not a regular file"},
		{name: "hard link through a symlink", entries: []layerEntry{symlinkEntry("l", "../../canary"), hardlinkEntry("h", "l/secret")}, wantErr: "not a"},
		{name: "hard link to a symlink", entries: []layerEntry{symlinkEntry("l", "../../canary/secret"), hardlinkEntry("h", "l")}, wantErr: "not a regular file"},
		{name: "hard link", entries: []layerEntry{reg("bin/a", "data", 0o755), hardlinkEntry("bin/b", "bin/a")},
			check: func(t *testing.T, dir string, _ ExtractStats) {
				a, _ := os.Stat(filepath.Join(dir, "bin/a"))
				b, _ := os.Stat(filepath.Join(dir, "bin/b"))
				if a == nil || b == nil || !os.SameFile(a, b) {
					t.Error("bin/b is not a hard link of bin/a")
				}
			}},
		{name: "devices and fifos are skipped", entries: []layerEntry{special("dev/null", tar.TypeChar), special("dev/sda", tar.TypeBlock), special("run/fifo", tar.TypeFifo)},
			check: func(t *testing.T, dir string, st ExtractStats) {
				for _, p := range []string{"dev/null", "dev/sda", "run/fifo"} {
					if _, err := os.Lstat(filepath.Join(dir, p)); err == nil {
						t.Errorf("%s was made", p)
					}
				}
				if st.Skipped != 3 {
					t.Errorf("skipped %d, want 3", st.Skipped)
				}
			}},
		{name: "unknown entry type", entries: []layerEntry{special("x", 'Z')}, wantErr: "unsupported tar entry type"},
		{name: "modes and owners kept", entries: []layerEntry{
			{h: tar.Header{Name: "usr/bin/su", Typeflag: tar.TypeReg, Mode: 0o4755, Uid: 0, Gid: 0}, body: "su"},
			{h: tar.Header{Name: "usr/bin/wall", Typeflag: tar.TypeReg, Mode: 0o2755, Uid: 0, Gid: 5}, body: "wall"},
			{h: tar.Header{Name: "tmp", Typeflag: tar.TypeDir, Mode: 0o1777}},
			{h: tar.Header{Name: "home/cnb", Typeflag: tar.TypeDir, Mode: 0o2750, Uid: 1000, Gid: 1001}},
			{h: tar.Header{Name: "home/cnb/f", Typeflag: tar.TypeReg, Mode: 0o600, Uid: 1000, Gid: 1001}, body: "f"},
			{h: tar.Header{Name: "etc/alt", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd", Uid: 7, Gid: 8}},
		}, check: func(t *testing.T, dir string, st ExtractStats) {
			wantMode(t, dir, "usr/bin/su", fs.ModeSetuid|0o755, 0, 0)
			wantMode(t, dir, "usr/bin/wall", fs.ModeSetgid|0o755, 0, 5)
			wantMode(t, dir, "tmp", fs.ModeDir|fs.ModeSticky|0o777, 0, 0)
			wantMode(t, dir, "home/cnb", fs.ModeDir|fs.ModeSetgid|0o750, 1000, 1001)
			wantMode(t, dir, "home/cnb/f", 0o600, 1000, 1001)
			wantMode(t, dir, "etc/alt", fs.ModeSymlink|0o777, 7, 8)
			if l, _ := os.Readlink(filepath.Join(dir, "etc/alt")); l != "/etc/passwd" {
				t.Errorf("symlink stored as %q, want it verbatim", l)
			}
			if fi, _ := os.Stat(filepath.Join(dir, "home/cnb/f")); fi == nil || !fi.ModTime().Equal(time.Unix(1_000_000_000, 0)) {
				t.Errorf("mtime not kept: %v", fi)
			}
		}},
		{name: "too many entries", lim: Limits{MaxEntries: 10}, entries: manyEntries(20), wantErr: "more than 10 entries", wantLimit: true},
		{name: "too many bytes", lim: Limits{MaxBytes: 1 << 20}, entries: []layerEntry{reg("big", strings.Repeat("z", 2<<20), 0o644)},
			wantErr: "more than 1048576 bytes", wantLimit: true},
	}
}

func manyEntries(n int) []layerEntry {
	var out []layerEntry
	for i := range n {
		out = append(out, reg(fmt.Sprintf("f%d", i), "", 0o644))
	}
	return out
}

func wantFile(t *testing.T, p, body string) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("%s: %v, want a regular file", p, err)
	}
	if b, _ := os.ReadFile(p); string(b) != body {
		t.Fatalf("%s holds %q, want %q", p, b, body)
	}
}

func wantWhiteout(t *testing.T, p string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("%s: %v mode %o rdev %d, want a 0/0 character device", p, err, st.Mode, st.Rdev)
	}
}

func wantMode(t *testing.T, dir, rel string, mode fs.FileMode, uid, gid uint32) {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != mode || st.Uid != uid || st.Gid != gid {
		t.Errorf("%s: %v %d:%d, want %v %d:%d", rel, fi.Mode(), st.Uid, st.Gid, mode, uid, gid)
	}
}

// A sparse entry that inflates past the limit is caught as written (its
// stream is a few blocks), and padding after the archive counts against
// the limit too.
func TestExtractLayerBoundsWhatIsWrittenAndRead(t *testing.T) {
	testenv.NeedRoot(t)
	dir := t.TempDir()
	_, err := ExtractLayer(context.Background(), bytes.NewReader(sparseBomb(1<<30)), dir, Limits{MaxBytes: 1 << 20})
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "files hold more than") {
		t.Fatalf("err = %v, want ErrLimit for the inflated file", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "sparse")); err == nil && fi.Size() > 2<<20 {
		t.Fatalf("%d bytes were written", fi.Size())
	}
	data := append(layerTar(t, "", []layerEntry{reg("a", "a", 0o644)}), make([]byte, 4<<20)...)
	if _, err := ExtractLayer(context.Background(), bytes.NewReader(data), t.TempDir(), Limits{MaxBytes: 1 << 20}); !errors.Is(err, ErrLimit) {
		t.Fatalf("err = %v, want ErrLimit for the padding", err)
	}
}

// sparseBomb is a PAX 1.0 sparse file (archive/tar reads them but cannot
// write them) of size bytes whose stream holds one byte of data.
func sparseBomb(size int64) []byte {
	var pax string
	for _, kv := range [][2]string{{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.name", "sparse"},
		{"GNU.sparse.realsize", fmt.Sprint(size)}} {
		rec := " " + kv[0] + "=" + kv[1] + "\n"
		n := len(rec) + 2
		if len(fmt.Sprint(n))+len(rec) != n {
			n++
		}
		pax += fmt.Sprint(n) + rec
	}
	body := make([]byte, 512)
	copy(body, fmt.Sprintf("1\n%d\n1\n", size-1))
	body = append(body, 'x')
	var out []byte
	out = append(out, rawTarBlock("PaxHeaders/sparse", 'x', len(pax))...)
	out = append(out, padBlock([]byte(pax))...)
	out = append(out, rawTarBlock("GNUSparseFile.0/sparse", '0', len(body))...)
	out = append(out, padBlock(body)...)
	return append(out, make([]byte, 1024)...)
}

// rawTarBlock is a ustar header block.
func rawTarBlock(name string, typ byte, size int) []byte {
	b := make([]byte, 512)
	copy(b[0:], name)
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], fmt.Sprintf("%011o\x00", size))
	copy(b[136:], "00000000000\x00")
	b[156] = typ
	copy(b[257:], "ustar\x0000")
	copy(b[148:], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func padBlock(b []byte) []byte {
	return append(b, make([]byte, (512-len(b)%512)%512)...)
}

// A layer is extracted into a fresh directory only, and a canceled
// context stops it.
func TestExtractLayerPreconditions(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "old"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	data := layerTar(t, "", []layerEntry{reg("a", "a", 0o644)})
	if _, err := ExtractLayer(context.Background(), bytes.NewReader(data), dir, Limits{}); err == nil || !strings.Contains(err.Error(), "empty directory") {
		t.Fatalf("non-empty dir: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ExtractLayer(ctx, bytes.NewReader(data), t.TempDir(), Limits{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
}
