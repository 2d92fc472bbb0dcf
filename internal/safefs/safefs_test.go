package safefs_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cipack/cipack/internal/safefs"
	"github.com/cipack/cipack/internal/testenv"
)

// secret is the canaries' content: it must never turn up in anything an
// operation read or wrote.
const secret = "CANARY-root-only"

const (
	max  = 1 << 20
	huge = 1 << 34 // sparse: costs no disk
)

// scene is one row's world: app is the tree the hostile party controls,
// outside holds the canaries (outside/canary, outside/dir/canary), dst is
// where copies and writes go.
type scene struct {
	app, outside, dst string
	data              []byte
	stats             safefs.CopyStats
}

func (s *scene) canary() string { return filepath.Join(s.outside, "canary") }

type hostileCase struct {
	name  string
	root  bool                         // needs root (mknod)
	plant func(t *testing.T, s *scene) // lays out the hostile input
	op    func(s *scene) error         // the operation under test
	want  string                       // error text wanted; "" = success
	check func(t *testing.T, s *scene) // more assertions, after success
}

// TestHostileInput runs each safefs operation against what an app, a
// builder or build code could plant. After every row the canaries outside
// the tree must be unchanged (content, mode, mtime, nothing added), and
// nothing the operation produced may hold their content.
func TestHostileInput(t *testing.T) {
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				testenv.NeedRoot(t)
			}
			s := newScene(t)
			tc.plant(t, s)
			before := snapshot(t, s.outside)
			err := runWithTimeout(t, func() error { return tc.op(s) })
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
			if after := snapshot(t, s.outside); !reflect.DeepEqual(before, after) {
				t.Fatalf("the canaries changed:\nbefore %v\nafter  %v", before, after)
			}
			assertNoLeak(t, s)
			if tc.check != nil && err == nil {
				tc.check(t, s)
			}
		})
	}
}

func hostileCases() []hostileCase {
	var cases []hostileCase
	cases = append(cases, readCases()...)
	cases = append(cases, copyTreeCases()...)
	cases = append(cases, copyOutCases()...)
	return append(cases, writeCases()...)
}

func readCases() []hostileCase {
	rf := func(name string) func(*scene) error {
		return func(s *scene) (err error) { s.data, err = safefs.ReadFile(s.app, name, max); return err }
	}
	rr := func(name string) func(*scene) error {
		return func(s *scene) (err error) {
			s.data, err = safefs.ReadRegular(filepath.Join(s.app, name), max)
			return err
		}
	}
	ru := func(name string) func(*scene) error {
		return func(s *scene) (err error) {
			s.data, err = safefs.ReadUserFile(filepath.Join(s.app, name), max)
			return err
		}
	}
	toCanary := plantLink("f", "") // "" = the canary's absolute path
	fifo := plantFIFO("f")
	device := plantDevice("f")
	zero := plantLink("f", "/dev/zero")
	big := plantSparse("f", huge)
	dir := plantDir("f")
	dangling := plantLink("f", "missing")
	return []hostileCase{
		{name: "ReadFile/absolute link to canary", plant: toCanary, op: rf("f"), want: "leads outside"},
		{name: "ReadFile/relative link out", plant: plantLink("f", "../outside/canary"), op: rf("f"), want: "leads outside"},
		{name: "ReadFile/dotdot name", plant: nothing, op: rf("../outside/canary"), want: "leads outside"},
		{name: "ReadFile/absolute name stays inside", plant: plantFile("f", "app's own"), op: rf("/../../f"), check: wantData("app's own")},
		{name: "ReadFile/link inside app is followed", plant: both(plantFile("real", "app's own"), plantLink("f", "real")), op: rf("f"), check: wantData("app's own")},
		{name: "ReadFile/symlinked parent dir", plant: plantLink("sub", "../outside"), op: rf("sub/canary"), want: "leads outside"},
		{name: "ReadFile/fifo", plant: fifo, op: rf("f"), want: "named pipe"},
		{name: "ReadFile/link to fifo", plant: both(plantFIFO("p"), plantLink("f", "p")), op: rf("f"), want: "named pipe"},
		{name: "ReadFile/link to dev zero", plant: zero, op: rf("f"), want: "leads outside"},
		{name: "ReadFile/char device", root: true, plant: device, op: rf("f"), want: "a device"},
		{name: "ReadFile/huge sparse file", plant: big, op: rf("f"), want: "more than"},
		{name: "ReadFile/directory", plant: dir, op: rf("f"), want: "a directory"},
		{name: "ReadFile/dangling link", plant: dangling, op: rf("f"), check: nil, want: "no such file"},
		{name: "ReadRegular/link to canary", plant: toCanary, op: rr("f"), want: "symbolic link"},
		{name: "ReadRegular/link to dev zero", plant: zero, op: rr("f"), want: "symbolic link"},
		{name: "ReadRegular/fifo", plant: fifo, op: rr("f"), want: "named pipe"},
		{name: "ReadRegular/char device", root: true, plant: device, op: rr("f"), want: "a device"},
		{name: "ReadRegular/huge sparse file", plant: big, op: rr("f"), want: "more than"},
		{name: "ReadRegular/directory", plant: dir, op: rr("f"), want: "a directory"},
		{name: "ReadRegular/dangling link", plant: dangling, op: rr("f"), want: "symbolic link"},
		{name: "ReadUserFile/link to dev zero", plant: zero, op: ru("f"), want: "a device"},
		{name: "ReadUserFile/fifo", plant: fifo, op: ru("f"), want: "named pipe"},
		{name: "ReadUserFile/huge sparse file", plant: big, op: ru("f"), want: "more than"},
		{name: "ReadUserFile/directory", plant: dir, op: ru("f"), want: "a directory"},
	}
}

func copyTreeCases() []hostileCase {
	ct := func(opt safefs.CopyOptions) func(*scene) error {
		return func(s *scene) (err error) { s.stats, err = safefs.CopyTree(s.app, s.dst, opt); return err }
	}
	all := ct(safefs.CopyOptions{SkipHardLinks: true})
	return []hostileCase{
		{name: "CopyTree/links kept as links", plant: both(plantLink("abs", ""), plantLink("rel", "../outside/canary"), plantLink("dev", "/dev/zero")), op: all,
			check: func(t *testing.T, s *scene) {
				wantLink(t, filepath.Join(s.dst, "abs"), s.canary())
				wantLink(t, filepath.Join(s.dst, "rel"), "../outside/canary")
				wantLink(t, filepath.Join(s.dst, "dev"), "/dev/zero")
			}},
		{name: "CopyTree/symlinked parent dir", plant: plantLink("sub", "../outside/dir"), op: all,
			check: func(t *testing.T, s *scene) { wantLink(t, filepath.Join(s.dst, "sub"), "../outside/dir") }},
		{name: "CopyTree/hard link to canary", plant: plantHardLink("h"), op: all,
			check: func(t *testing.T, s *scene) {
				wantList(t, "skipped links", s.stats.SkippedLinks, "h")
				wantAbsent(t, filepath.Join(s.dst, "h"))
			}},
		{name: "CopyTree/fifo skipped", plant: plantFIFO("p"), op: all,
			check: func(t *testing.T, s *scene) { wantList(t, "skipped", s.stats.Skipped, "p") }},
		{name: "CopyTree/char device skipped", root: true, plant: plantDevice("d"), op: all,
			check: func(t *testing.T, s *scene) { wantList(t, "skipped", s.stats.Skipped, "d") }},
		{name: "CopyTree/dangling link kept", plant: plantLink("l", "nowhere"), op: all,
			check: func(t *testing.T, s *scene) { wantLink(t, filepath.Join(s.dst, "l"), "nowhere") }},
		{name: "CopyTree/huge sparse file beyond MaxBytes", plant: plantSparse("f", huge), op: ct(safefs.CopyOptions{MaxBytes: max}), want: "exceed"},
		{name: "CopyTree/dst is a link to outside", plant: func(t *testing.T, s *scene) { must(t, os.Symlink(filepath.Join(s.outside, "dir"), s.dst)) },
			op: all, want: "not a directory"},
	}
}

func copyOutCases() []hostileCase {
	co := func(s *scene) error { _, err := safefs.CopyOut(s.app, s.dst, max, 4*max); return err }
	plantDst := func(rel, target string) func(*testing.T, *scene) {
		return func(t *testing.T, s *scene) {
			must(t, os.MkdirAll(filepath.Dir(filepath.Join(s.dst, rel)), 0o755))
			must(t, os.Symlink(strings.ReplaceAll(target, "OUT", s.outside), filepath.Join(s.dst, rel)))
		}
	}
	return []hostileCase{
		{name: "CopyOut/link in src skipped", plant: both(plantLink("f", ""), plantLink("sub", "../outside/dir"), plantFile("ok", "sbom")), op: co,
			check: func(t *testing.T, s *scene) {
				wantAbsent(t, filepath.Join(s.dst, "f"))
				wantAbsent(t, filepath.Join(s.dst, "sub"))
				wantContent(t, filepath.Join(s.dst, "ok"), "sbom")
			}},
		{name: "CopyOut/link planted at a dst file", plant: both(plantFile("f", "sbom"), plantDst("f", "OUT/canary")), op: co,
			check: func(t *testing.T, s *scene) { wantContent(t, filepath.Join(s.dst, "f"), "sbom") }},
		{name: "CopyOut/link planted at a dst dir", plant: both(plantFile("launch/f", "sbom"), plantDst("launch", "OUT/dir")), op: co,
			check: func(t *testing.T, s *scene) { wantContent(t, filepath.Join(s.dst, "launch", "f"), "sbom") }},
		{name: "CopyOut/dst is a link", plant: both(plantFile("f", "sbom"), func(t *testing.T, s *scene) { must(t, os.Symlink(filepath.Join(s.outside, "dir"), s.dst)) }),
			op: co, want: "not a directory"},
		{name: "CopyOut/src is a link", plant: nothing,
			op: func(s *scene) error {
				_, err := safefs.CopyOut(filepath.Join(s.outside, "link"), s.dst, max, max)
				return err
			}, want: "not a directory"},
		{name: "CopyOut/fifo skipped", plant: plantFIFO("p"), op: co,
			check: func(t *testing.T, s *scene) { wantAbsent(t, filepath.Join(s.dst, "p")) }},
		{name: "CopyOut/char device skipped", root: true, plant: plantDevice("d"), op: co},
		{name: "CopyOut/hard link to canary skipped", plant: both(plantHardLink("h"), plantFile("ok", "sbom")), op: co,
			check: func(t *testing.T, s *scene) {
				wantAbsent(t, filepath.Join(s.dst, "h"))
				wantContent(t, filepath.Join(s.dst, "ok"), "sbom")
			}},
		{name: "CopyOut/huge sparse file", plant: plantSparse("f", huge), op: co, want: "more than"},
		{name: "CopyOut/total bound", plant: both(plantSparse("a", max), plantSparse("b", max), plantSparse("c", max), plantSparse("d", max), plantSparse("e", max)), op: co, want: "in total"},
	}
}

func writeCases() []hostileCase {
	cf := func(s *scene) error {
		f, err := safefs.CreateFresh(filepath.Join(s.app, "f"), 0o644)
		if err != nil {
			return err
		}
		_, err = f.WriteString("fresh")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	wa := func(s *scene) error { return safefs.WriteFileAtomic(filepath.Join(s.app, "f"), []byte("fresh"), 0o644) }
	into := func(s *scene) error {
		return safefs.WriteFileAtomic(filepath.Join(s.app, "sub", "f"), []byte("fresh"), 0o644)
	}
	fresh := func(t *testing.T, s *scene) { wantContent(t, filepath.Join(s.app, "f"), "fresh") }
	return []hostileCase{
		{name: "CreateFresh/link to canary replaced", plant: plantLink("f", ""), op: cf, check: fresh},
		{name: "CreateFresh/dangling link out replaced", plant: plantLink("f", "../outside/new"), op: cf, check: fresh},
		{name: "CreateFresh/fifo replaced", plant: plantFIFO("f"), op: cf, check: fresh},
		{name: "CreateFresh/directory refused", plant: plantDir("f"), op: cf, want: "is a directory"},
		{name: "CreateFresh/symlinked parent dir", plant: plantLink("sub", "../outside/dir"),
			op: func(s *scene) error {
				_, err := safefs.CreateFresh(filepath.Join(s.app, "sub", "canary"), 0o644)
				return err
			}, want: "symbolic link"},
		{name: "WriteFileAtomic/link to canary replaced", plant: plantLink("f", ""), op: wa, check: fresh},
		{name: "WriteFileAtomic/symlinked parent dir", plant: plantLink("sub", "../outside/dir"), op: into, want: "symbolic link"},
		{name: "CopyFileAtomic/symlinked parent dir", plant: plantLink("sub", "../outside/dir"),
			op: func(s *scene) error {
				src := s.dst + "-src"
				if err := os.WriteFile(src, []byte("self"), 0o755); err != nil {
					return err
				}
				return safefs.CopyFileAtomic(src, filepath.Join(s.app, "sub", "new", "f"), 0o755)
			}, want: "symbolic link"},
	}
}

func newScene(t *testing.T) *scene {
	base := t.TempDir()
	s := &scene{app: filepath.Join(base, "app"), outside: filepath.Join(base, "outside"), dst: filepath.Join(base, "dst")}
	must(t, os.MkdirAll(s.app, 0o755))
	must(t, os.MkdirAll(filepath.Join(s.outside, "dir"), 0o755))
	must(t, os.WriteFile(s.canary(), []byte(secret), 0o600))
	must(t, os.WriteFile(filepath.Join(s.outside, "dir", "canary"), []byte(secret), 0o600))
	must(t, os.Symlink("dir", filepath.Join(s.outside, "link")))
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	for _, p := range []string{s.canary(), filepath.Join(s.outside, "dir", "canary")} {
		must(t, os.Chtimes(p, old, old))
	}
	return s
}

// runWithTimeout fails the test when op blocks (a FIFO opened for reading
// waits for a writer forever).
func runWithTimeout(t *testing.T, op func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- op() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the operation blocked")
		return nil
	}
}

// snapshot records every entry under dir (without following links): type,
// mode, mtime, size, content, link target.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		v := fi.Mode().String() + " " + fi.ModTime().String()
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			v += " -> " + l
		}
		out[p] = v
		return nil
	})
	must(t, err)
	return out
}

// assertNoLeak checks that no read result and no regular file in dst holds
// the canary's content.
func assertNoLeak(t *testing.T, s *scene) {
	t.Helper()
	if bytes.Contains(s.data, []byte(secret)) {
		t.Fatal("the canary's content was read")
	}
	_ = filepath.WalkDir(s.dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the canary's content", p)
		}
		return nil
	})
}
