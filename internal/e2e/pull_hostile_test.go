package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/safefs"
	"github.com/cipack/cipack/internal/testenv"
)

// TestHostileBuilder runs pull mode against builder images made to attack
// the host through cipack's layer store and sandbox. Every row must build
// cleanly (exit 0) or fail cleanly (a non-zero exit naming the cause, 13
// for a store or sandbox refusal), and after every row nothing outside the
// store, cipack's temp dir and the build's own directories has changed:
// canary files outside everything keep content, mode and mtime, and no
// entry appears among them; host files the rows aim at are untouched; no
// `.unpack-*` is left in a store; no cipack-sandbox-*/cipack-layers-* dir
// of a finished cipack is left in its temp dir; and no process of a build
// still runs.
//
// Each row's cipack runs with TMPDIR set to a directory of its own, so
// anything left there is the row's.
func TestHostileBuilder(t *testing.T) {
	needFixture(t)
	began := time.Now()
	w := &phWorld{canary: makeCanary(t)}
	rows := []phRow{
		{
			name:    "1_mount_targets_are_symlinks_out",
			builder: (*phWorld).symlinkBuilder,
			check:   checkSymlinkTargets,
		},
		{
			name:    "2_setuid_root_file",
			builder: (*phWorld).suidBuilder,
			args:    []string{"--env", "HOSTILE=suid"},
			check:   checkSetuid,
		},
		{
			name:    "3_device_nodes",
			builder: (*phWorld).deviceBuilder,
			args:    []string{"--env", "HOSTILE=devices"},
			check:   checkDevices,
		},
		{
			// First a good build of the test builder fills the store; the
			// whiteout builders are it plus one layer.
			name:    "4_whiteout_tricks",
			builder: func(*phWorld, *testing.T) string { return fx.BuilderImage },
			check:   checkWhiteouts,
		},
		{
			name:    "5_hard_links_out",
			builder: func(*phWorld, *testing.T) string { return fx.BuilderImage },
			check:   checkHardLinks,
		},
		{
			name:    "6_decompression_bomb",
			builder: func(*phWorld, *testing.T) string { return fx.BuilderImage },
			check:   checkBomb,
		},
		{
			name:    "7_corrupted_cached_layer",
			builder: (*phWorld).baseBuilder,
			check:   checkTamperedLayer,
		},
		{
			name:    "8_two_concurrent_builds_one_fresh_store",
			builder: (*phWorld).baseBuilder,
			start:   twoConcurrentBuilds,
			check:   func(*testing.T, *phEnv, phRun) {}, // twoConcurrentBuilds checks both
		},
		{
			name:    "9_sigkill_mid_unpack_then_rerun",
			builder: (*phWorld).bigBuilder,
			start:   killMidUnpackThenRerun,
			check:   checkRerunAfterKill,
		},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			rowStart := time.Now()
			e := w.newEnv(t, row.name)
			before := hostFacts(w.canary)
			// Deferred: the after-row checks run when a check stopped
			// the row with t.Fatalf too.
			defer func() {
				e.finish(t, before)
				t.Logf("row %s took %s", row.name, time.Since(rowStart).Round(time.Millisecond))
			}()
			ref := row.builder(w, t)
			start := row.start
			if start == nil {
				start = func(t *testing.T, e *phEnv, ref string, args []string) phRun {
					return e.build(t, e.store, ref, args...)
				}
			}
			row.check(t, e, start(t, e, ref, row.args))
		})
	}
	t.Logf("TestHostileBuilder: %s in total", time.Since(began).Round(time.Millisecond))
}

// phRow is one attack: the builder it pulls, more `cipack build` flags,
// how its build(s) run (default: one build into the row's fresh store)
// and what must hold afterwards.
type phRow struct {
	name    string
	builder func(w *phWorld, t *testing.T) string
	args    []string
	start   func(t *testing.T, e *phEnv, builder string, args []string) phRun
	check   func(t *testing.T, e *phEnv, r phRun)
}

// ---- the rows' checks ----

// Row 1: the builder's /workspace, /layers, /platform, /tmp, /dev and
// /etc/resolv.conf are absolute symlinks to paths under the canary dir.
// The runtime resolves mount targets inside the container's root, so the
// build works (or is refused) and nothing appears at those host paths.
// The row's build points them at paths that do not exist on the host; two
// more point them at directories (and a file) that do: once all six, once
// all but /dev (which runtimes treat specially), so the build gets as far
// as it can.
func checkSymlinkTargets(t *testing.T, e *phEnv, r phRun) {
	symlinkOutcome(t, r)
	for _, target := range e.w.symlinkTargets("", true) {
		if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists on the host after the build (%v): a mount target was resolved outside the container's root", target, err)
		}
	}
	for _, v := range []struct {
		tag     string
		withDev bool
	}{{"existing-targets", true}, {"existing-targets-but-dev", false}} {
		t.Run(v.tag, func(t *testing.T) {
			before := hostFacts(e.w.canary)
			ref := e.w.symlinkBuilderTo(t, "symlinks-"+v.tag, "existing", v.withDev)
			symlinkOutcome(t, e.build(t, e.store, ref))
			if diffs := factsDiff(before, hostFacts(e.w.canary)); len(diffs) > 0 {
				t.Errorf("the canary dirs the builder's symlinks point at changed on the host:\n%s", strings.Join(diffs, "\n"))
			}
		})
	}
}

// symlinkOutcome wants a build, or a clean failure.
func symlinkOutcome(t *testing.T, r phRun) {
	t.Helper()
	switch r.code {
	case 0:
		t.Logf("built (the targets resolved inside the root)")
	case exit.Sandbox, exit.Builder, exit.Detect, exit.Build, exit.Export, exit.Lifecycle:
		t.Logf("failed cleanly with exit %d:\n%s", r.code, tail(r.stderr, 15))
		r.mustExplain(t)
	default:
		t.Errorf("want a build (exit 0) or a clean failure; got %s", r.log())
	}
	r.noCrash(t)
}

// Row 2: a setuid-root busybox and a setuid-root probe in the builder.
// Build code still runs as the build user and the bits give it nothing
// (nosuid, no_new_privs), while the store keeps the image's mode bits.
func checkSetuid(t *testing.T, e *phEnv, r phRun) {
	r.mustSucceed(t, "build with a setuid-root file in the builder")
	out := r.out()
	if m := regexp.MustCompile(`hostile: build user uid=(\d+)`).FindStringSubmatch(out); m == nil || m[1] != strconv.Itoa(fx.UID) {
		t.Errorf("the buildpack did not report running as the build user %d:\n%s", fx.UID, r.log())
	}
	m := regexp.MustCompile(`hostile: suid uid=(\d*)`).FindStringSubmatch(out)
	if m == nil || m[1] == "" || m[1] == "0" {
		t.Errorf("/usr/bin/suidbox id -u: want a non-zero uid, got %q:\n%s", m, r.log())
	}
	p := regexp.MustCompile(`hostile: suidprobe uid=(\d+) euid=(\d+)`).FindStringSubmatch(out)
	if p == nil || p[1] == "0" || p[2] == "0" {
		t.Errorf("/usr/bin/suidprobe (setuid root, keeps its euid when the bit works): want uid and euid non-zero, got %q:\n%s", p, r.log())
	} else {
		t.Logf("inside the build: suidbox uid=%s, suidprobe uid=%s euid=%s", m[1], p[1], p[2])
	}
	for _, f := range []string{"usr/bin/suidbox", "usr/bin/suidprobe"} {
		found, _ := filepath.Glob(filepath.Join(r.store, "layers", "*", f))
		if len(found) != 1 {
			t.Errorf("want one %s in the store, found %v", f, found)
			continue
		}
		fi, err := os.Lstat(found[0])
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode()&fs.ModeSetuid == 0 || fi.Mode().Perm() != 0o755 || st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s in the store: mode %v owner %d:%d; want the image's setuid 0755 owned by 0:0", found[0], fi.Mode(), st.Uid, st.Gid)
		}
	}
}

// Row 3: a char device (c 1 1, /dev/mem) and a block device (b 8 0) in
// the builder: the build runs, sees no device node outside /dev, and the
// store holds none (whiteouts, 0/0 char devices, aside).
func checkDevices(t *testing.T, e *phEnv, r phRun) {
	r.mustSucceed(t, "build with device nodes in the builder")
	t.Logf("inside the build:\n%s", grepLines(r.out(), "hostile:"))
	if !strings.Contains(r.out(), "hostile: devices found: 0") {
		t.Errorf("the build saw device nodes outside /dev (or did not look):\n%s", grepLines(r.out(), "hostile:"))
	}
	if devs := storeDevices(t, r.store); len(devs) > 0 {
		t.Errorf("device nodes in the store: %v", devs)
	}
}

// Row 4: whiteouts of ".", "..", of nothing, and inside a directory: each
// is refused (exit 13 naming the entry), and the layers a good build put in
// the same store before are all there, unchanged.
func checkWhiteouts(t *testing.T, e *phEnv, good phRun) {
	good.mustSucceed(t, "good build filling the store")
	before := storeLayers(t, good.store)
	if len(before) == 0 {
		t.Fatalf("the good build left no layer in %s", good.store)
	}
	for _, v := range []struct{ tag, entry, what string }{
		{"wh-dot", ".wh..", `whiteout of "." at the top`},
		{"wh-dotdot", ".wh...", `whiteout of ".." at the top`},
		{"wh-etc-dot", "etc/.wh..", `whiteout of "." in etc`},
		{"wh-etc-dotdot", "etc/.wh...", `whiteout of ".." in etc`},
		{"wh-empty", ".wh.", "whiteout of an empty name"},
		// A whiteout's target cannot hold a "/": a tar name's last
		// component never does. The nearest is a path through a
		// ".wh." directory; it is checked in the "hostile names" sub-row.
	} {
		t.Run(v.tag, func(t *testing.T) {
			layer, err := rawLayer(phEntry{hdr: tar.Header{Name: v.entry, Typeflag: tar.TypeReg, Mode: 0o644}})
			if err != nil {
				t.Fatal(err)
			}
			ref, diffID := e.w.appendBuilder(t, fx.BuilderImage, v.tag, layer)
			r := e.build(t, good.store, ref)
			r.cleanRefusal(t, v.what, v.entry)
			e.checkStoreKept(t, good.store, before)
			if _, err := os.Lstat(filepath.Join(good.store, "layers", diffID)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the refused layer %s is in the store (%v)", diffID, err)
			}
		})
	}
	// Names that lead out of the layer through "..", and a whiteout
	// under a directory named like one: refused, or kept inside the layer.
	t.Run("hostile-names", func(t *testing.T) {
		layer, err := rawLayer(
			phEntry{hdr: tar.Header{Name: "../../../../pullhostile-escape", Typeflag: tar.TypeReg, Mode: 0o644}, body: []byte("out\n")},
		)
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := e.w.appendBuilder(t, fx.BuilderImage, "name-dotdot", layer)
		r := e.build(t, good.store, ref)
		if r.code != 0 {
			r.cleanRefusal(t, `an entry named "../../../../pullhostile-escape"`, "pullhostile-escape")
		}
		for _, p := range []string{"/pullhostile-escape", filepath.Join(fx.Dir, "pullhostile-escape"), filepath.Join(filepath.Dir(fx.Dir), "pullhostile-escape"),
			filepath.Join(good.store, "pullhostile-escape"), filepath.Join(good.store, "layers", "pullhostile-escape")} {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("the entry ../../../../pullhostile-escape was written at %s", p)
				_ = os.Remove(p)
			}
		}
		e.checkStoreKept(t, good.store, before)
	})
}

// Row 5: hard links to ../../../../etc/passwd and /etc/shadow: refused
// (exit 13 naming the entry) or resolved inside the layer; the host's
// files keep their link count and content, and no store file is them.
func checkHardLinks(t *testing.T, e *phEnv, good phRun) {
	good.mustSucceed(t, "good build filling the store")
	before := storeLayers(t, good.store)
	for _, v := range []struct{ tag, entry, link, host string }{
		{"link-relative", "evil", "../../../../etc/passwd", "/etc/passwd"},
		{"link-absolute", "evil2", "/etc/shadow", "/etc/shadow"},
	} {
		t.Run(v.tag, func(t *testing.T) {
			hostBefore := describe(v.host)
			var hostIno uint64
			if fi, err := os.Stat(v.host); err == nil {
				hostIno = fi.Sys().(*syscall.Stat_t).Ino
			}
			layer, err := rawLayer(phEntry{hdr: tar.Header{Name: v.entry, Typeflag: tar.TypeLink, Linkname: v.link}})
			if err != nil {
				t.Fatal(err)
			}
			ref, diffID := e.w.appendBuilder(t, fx.BuilderImage, v.tag, layer)
			r := e.build(t, good.store, ref)
			if r.code == 0 {
				// Resolved inside the layer: then the entry is a file of
				// the layer, never the host's.
				p := filepath.Join(good.store, "layers", diffID, v.entry)
				if fi, err := os.Lstat(p); err == nil && fi.Sys().(*syscall.Stat_t).Ino == hostIno {
					t.Errorf("%s in the store is %s itself (same inode)", p, v.host)
				}
				t.Logf("built: the hard link was resolved inside the layer")
			} else {
				r.cleanRefusal(t, fmt.Sprintf("hard link %s -> %s", v.entry, v.link), v.entry)
			}
			if after := describe(v.host); after != hostBefore {
				t.Errorf("%s changed:\nbefore %s\nafter  %s", v.host, hostBefore, after)
			}
			if same := storeInode(t, good.store, hostIno); same != "" {
				t.Errorf("%s in the store is a hard link to %s", same, v.host)
			}
			e.checkStoreKept(t, good.store, before)
		})
	}
}

// Row 6: a decompression bomb. The store's byte limit is a constant
// (safefs.DefaultLimits.MaxBytes, 16 GiB) unless cipack has a
// --max-layer-bytes flag; its entry limit (MaxEntries) is reachable: a
// small blob of one more empty entries than it allows.
func checkBomb(t *testing.T, e *phEnv, good phRun) {
	good.mustSucceed(t, "good build filling the store")
	before := storeLayers(t, good.store)
	var layer v1.Layer
	var args []string
	var err error
	var what string
	if help, _ := exec.Command(fx.Cipack, "build", "--help").CombinedOutput(); bytes.Contains(help, []byte("--max-layer-bytes")) {
		what = "a layer of one 8 MiB file of zeros, with --max-layer-bytes 1048576"
		args = []string{"--max-layer-bytes", "1048576"}
		layer, err = rawLayer(phEntry{hdr: tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644}, body: make([]byte, 8<<20)})
	} else {
		limit := safefs.DefaultLimits.MaxEntries
		if limit <= 0 || limit > 4<<20 {
			t.Fatalf("cannot make a decompression bomb the store refuses in reasonable time: cipack has no --max-layer-bytes flag, "+
				"the byte limit is the constant safefs.DefaultLimits.MaxBytes (%d bytes), and the entry limit safefs.DefaultLimits.MaxEntries is %d "+
				"(need a positive limit of at most 4Mi entries, or a CLI flag to lower either limit)", safefs.DefaultLimits.MaxBytes, limit)
		}
		n := limit + 1000
		what = fmt.Sprintf("a layer of %d empty entries (the store allows %d; cipack has no --max-layer-bytes flag and MaxBytes is a %d-byte constant)",
			n, limit, safefs.DefaultLimits.MaxBytes)
		layer, err = bombLayer(n)
	}
	if err != nil {
		t.Fatal(err)
	}
	size, _ := layer.Size()
	t.Logf("bomb: %s, %d bytes compressed", what, size)
	ref, diffID := e.w.appendBuilder(t, fx.BuilderImage, "bomb", layer)
	r := e.build(t, good.store, ref, args...)
	t.Logf("the bomb build took %s", r.took.Round(time.Millisecond))
	if r.code != exit.Sandbox || !regexp.MustCompile(`(?i)limit|entries|too (large|big|many)`).MatchString(r.stderr) {
		t.Errorf("want a clean refusal of %s: exit %d naming the limit; got %s", what, exit.Sandbox, r.log())
	}
	r.noCrash(t)
	t.Logf("refusal: %s", grepLines(r.stderr, "(?i)limit|refused"))
	if _, err := os.Lstat(filepath.Join(good.store, "layers", diffID)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the bomb layer %s is in the store (%v)", diffID, err)
	}
	e.checkStoreKept(t, good.store, before)
}

// Row 7: a buildpack's bin/build edited in the store after a good build.
// The next build notices (the seal), unpacks the layer again and runs the
// image's script: it never prints TAMPERED. Twice: an edit that changes
// the size, then one that keeps the size and the mtime.
func checkTamperedLayer(t *testing.T, e *phEnv, good phRun) {
	good.mustSucceed(t, "good build filling the store")
	glob := filepath.Join(good.store, "layers", "*", "cnb", "buildpacks", "cipack-test_pullhostile", "0.0.1", "bin", "build")
	found, _ := filepath.Glob(glob)
	if len(found) != 1 {
		t.Fatalf("want one %s, found %v", glob, found)
	}
	script := found[0]
	orig, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	nl := bytes.IndexByte(orig, '\n') + 1
	for _, step := range []struct {
		name   string
		tamper func() error
	}{
		{"size_changes", func() error {
			// An echo right after the shebang (appended after the script's
			// own `exit 0` it would never run).
			f, err := os.OpenFile(script, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				return err
			}
			_, err = f.Write(append(append(append([]byte{}, orig[:nl]...), "echo TAMPERED\n"...), orig[nl:]...))
			return errors.Join(err, f.Close())
		}},
		{"same_size_same_mtime", func() error {
			fi, err := os.Lstat(script)
			if err != nil {
				return err
			}
			evil := []byte("echo TAMPERED #") // over the start of the comment on line 2
			if !bytes.HasPrefix(orig[nl:], []byte("# ")) || len(orig) < nl+len(evil) {
				return fmt.Errorf("line 2 of %s is not a comment to overwrite", script)
			}
			b := append([]byte{}, orig...)
			copy(b[nl:], evil)
			f, err := os.OpenFile(script, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			_, err = f.WriteAt(b, 0)
			if err = errors.Join(err, f.Close()); err != nil {
				return err
			}
			return os.Chtimes(script, fi.ModTime(), fi.ModTime())
		}},
	} {
		t.Run(step.name, func(t *testing.T) {
			if err := step.tamper(); err != nil {
				t.Fatal(err)
			}
			r := e.build(t, good.store, e.w.baseBuilder(t))
			if r.code != 0 {
				t.Fatalf("rebuild after tampering with %s: %s", script, r.log())
			}
			if strings.Contains(r.out(), "TAMPERED") {
				t.Errorf("the tampered script in the store ran:\n%s", grepLines(r.out(), "TAMPERED|unpacked"))
			}
			n := -1
			if m := regexp.MustCompile(`(\d+) unpacked`).FindStringSubmatch(r.stderr); m != nil {
				n, _ = strconv.Atoi(m[1])
			}
			if n < 1 {
				t.Errorf("the log should say the tampered layer was unpacked again (want >= 1 unpacked):\n%s", grepLines(r.stderr, "unpacked|builder"))
			} else {
				t.Logf("log: %s", grepLines(r.stderr, "unpacked"))
			}
			now, _ := filepath.Glob(glob)
			for _, p := range now {
				if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("TAMPERED")) {
					t.Errorf("%s still holds the tampered script after the rebuild", p)
				}
			}
		})
	}
}

// Row 8: two builds at once on one fresh store both succeed.
func twoConcurrentBuilds(t *testing.T, e *phEnv, ref string, args []string) phRun {
	a := e.start(t, e.store, ref, args...)
	b := e.start(t, e.store, ref, args...)
	ra, rb := a.wait(t), b.wait(t)
	e.afterRun(t, ra, a.lcBefore)
	e.afterRun(t, rb, b.lcBefore)
	for i, r := range []phRun{ra, rb} {
		if r.code != 0 {
			t.Errorf("concurrent build %d of 2: %s", i+1, r.log())
		} else {
			t.Logf("concurrent build %d: %s in %s", i+1, grepLines(r.stderr, "unpacked"), r.took.Round(time.Millisecond))
		}
	}
	return rb
}

// Row 9: SIGKILL while layers are unpacked, then the same build again.
func killMidUnpackThenRerun(t *testing.T, e *phEnv, ref string, args []string) phRun {
	p := e.start(t, e.store, ref, args...)
	deadline := time.Now().Add(30 * time.Second)
	var seen []string
	for len(seen) == 0 && time.Now().Before(deadline) {
		select {
		case <-p.done:
			r := p.wait(t)
			t.Fatalf("the build ended before any .unpack-* dir was seen in %s (unpacking too fast to catch?): %s", e.store, r.log())
		default:
		}
		seen = unpackDirs(e.store)
		if len(seen) == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	if len(seen) == 0 {
		_ = p.cmd.Process.Kill()
		r := p.wait(t)
		t.Fatalf("no .unpack-* dir appeared in %s within 30 s: %s", e.store, r.log())
	}
	_ = p.cmd.Process.Kill()
	killed := p.wait(t)
	e.killedPid = killed.pid
	t.Logf("killed cipack %d while %v was being unpacked; left after the kill: %v", killed.pid, seen, unpackDirs(e.store))
	if left := e.buildProcs(killed, p.lcBefore, 5*time.Second); len(left) > 0 {
		t.Errorf("processes of the killed build still run:\n%s", strings.Join(left, "\n"))
	}
	return e.build(t, e.store, ref, args...)
}

func checkRerunAfterKill(t *testing.T, e *phEnv, r phRun) {
	if r.code != 0 {
		t.Fatalf("the build after a SIGKILL mid-unpack: %s", r.log())
	}
	t.Logf("rerun: %s", grepLines(r.stderr, "unpacked"))
	if u := unpackDirs(r.store); len(u) > 0 {
		t.Errorf(".unpack-* dirs left after the rerun: %v", u)
	}
	for _, dir := range []string{e.tmp, os.TempDir()} {
		if left := pidEntries(dir, "cipack-", e.killedPid); len(left) > 0 {
			t.Errorf("temp dirs of the killed cipack %d left in %s after the rerun: %v", e.killedPid, dir, left)
		}
	}
}

// ---- builders ----

// phWorld is what the rows share: the canary dir, and builder images each
// made once, on first use.
type phWorld struct {
	canary                             string
	base, symlinks, suid, devices, big phOnce
	probeOnce                          phOnce // the suidprobe binary's path
}

type phOnce struct {
	once sync.Once
	val  string
	err  error
}

func (o *phOnce) get(t *testing.T, what string, make func() (string, error)) string {
	t.Helper()
	o.once.Do(func() { o.val, o.err = make() })
	if o.err != nil {
		t.Fatalf("make %s: %v", what, o.err)
	}
	return o.val
}

// baseBuilder is the test builder (the example buildpacks) plus the
// pullhostile buildpack (testdata/pullhostile/buildpack).
func (w *phWorld) baseBuilder(t *testing.T) string {
	return w.base.get(t, "the pullhostile builder", func() (string, error) {
		bps, err := testenv.ExampleBuildpacks()
		if err != nil {
			return "", err
		}
		abs, err := filepath.Abs(filepath.Join("testdata", "pullhostile", "buildpack"))
		if err != nil {
			return "", err
		}
		bps = append(bps, testenv.Buildpack{ID: "cipack-test/pullhostile", Version: "0.0.1", Dir: abs})
		cnb, err := testenv.MakeBuilder(filepath.Join(fx.Dir, "pullhostile-cnb"), testenv.BuilderSpec{
			LifecycleDir: fx.LifecycleDir, RunImage: fx.RunImage, Buildpacks: bps,
		})
		if err != nil {
			return "", err
		}
		base, err := testenv.RunImage(testenv.RunImageSpec{UID: fx.UID, GID: fx.GID, Version: "v1"})
		if err != nil {
			return "", err
		}
		ref := fx.Registry.Host + "/pullhostile/builder:base"
		_, err = fx.PushBuilder(context.Background(), cnb, ref, base)
		return ref, err
	})
}

// symlinkTargets maps the builder paths row 1 makes symlinks to their
// targets under the canary dir's sub (where makeCanary made them for
// "existing"; nothing is there for "").
func (w *phWorld) symlinkTargets(sub string, withDev bool) map[string]string {
	dir := filepath.Join(w.canary, sub)
	m := map[string]string{
		"workspace":       filepath.Join(dir, "ws"),
		"layers":          filepath.Join(dir, "layers"),
		"platform":        filepath.Join(dir, "platform"),
		"tmp":             filepath.Join(dir, "tmp"),
		"etc/resolv.conf": filepath.Join(dir, "resolv.conf"),
	}
	if withDev {
		m["dev"] = filepath.Join(dir, "dev")
	}
	return m
}

func (w *phWorld) symlinkBuilder(t *testing.T) string {
	return w.symlinks.get(t, "the symlinked-mount-targets builder", func() (string, error) {
		return w.makeSymlinkBuilder(t, "symlinks", "", true)
	})
}

func (w *phWorld) symlinkBuilderTo(t *testing.T, tag, sub string, withDev bool) string {
	ref, err := w.makeSymlinkBuilder(t, tag, sub, withDev)
	if err != nil {
		t.Fatalf("make the %s builder: %v", tag, err)
	}
	return ref
}

func (w *phWorld) makeSymlinkBuilder(t *testing.T, tag, sub string, withDev bool) (string, error) {
	base := w.baseBuilder(t)
	files := []testenv.TarFile{{Name: "etc/", Dir: true, Mode: 0o755}}
	targets := w.symlinkTargets(sub, withDev)
	names := make([]string, 0, len(targets))
	for n := range targets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		files = append(files, testenv.TarFile{Name: n, Linkname: targets[n]})
	}
	l, err := testenv.LayerFromFiles(files)
	if err != nil {
		return "", err
	}
	ref, _, err := w.appendTo(base, tag, l)
	return ref, err
}

func (w *phWorld) suidBuilder(t *testing.T) string {
	base := w.baseBuilder(t)
	probe := w.probeOnce.get(t, "the suidprobe binary", func() (string, error) {
		dir, err := os.MkdirTemp(fx.Dir, "pullhostile-suidprobe-")
		if err != nil {
			return "", err
		}
		out := filepath.Join(dir, "suidprobe")
		cmd := exec.Command("go", "build", "-o", out, "./testdata/pullhostile/suidprobe")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build suidprobe: %v\n%s", err, b)
		}
		return out, nil
	})
	return w.suid.get(t, "the setuid builder", func() (string, error) {
		bb, err := os.ReadFile(testenv.BusyboxPath)
		if err != nil {
			return "", err
		}
		pb, err := os.ReadFile(probe)
		if err != nil {
			return "", err
		}
		l, err := rawLayer(
			phEntry{hdr: tar.Header{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755}},
			phEntry{hdr: tar.Header{Name: "usr/bin/", Typeflag: tar.TypeDir, Mode: 0o755}},
			phEntry{hdr: tar.Header{Name: "usr/bin/suidbox", Typeflag: tar.TypeReg, Mode: 0o4755}, body: bb},
			phEntry{hdr: tar.Header{Name: "usr/bin/suidprobe", Typeflag: tar.TypeReg, Mode: 0o4755}, body: pb},
		)
		if err != nil {
			return "", err
		}
		ref, _, err := w.appendTo(base, "suid", l)
		return ref, err
	})
}

func (w *phWorld) deviceBuilder(t *testing.T) string {
	base := w.baseBuilder(t)
	return w.devices.get(t, "the device-node builder", func() (string, error) {
		l, err := rawLayer(
			phEntry{hdr: tar.Header{Name: "opt/", Typeflag: tar.TypeDir, Mode: 0o755}},
			phEntry{hdr: tar.Header{Name: "opt/mem", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 1}},
			phEntry{hdr: tar.Header{Name: "opt/sda", Typeflag: tar.TypeBlock, Mode: 0o666, Devmajor: 8, Devminor: 0}},
		)
		if err != nil {
			return "", err
		}
		ref, _, err := w.appendTo(base, "devices", l)
		return ref, err
	})
}

// bigBuilder is the test builder plus 20 layers of 8 MiB of random bytes:
// unpacking it takes long enough to be caught half-way.
func (w *phWorld) bigBuilder(t *testing.T) string {
	return w.big.get(t, "the big builder", func() (string, error) {
		var layers []v1.Layer
		buf := make([]byte, 8<<20)
		for i := 0; i < 20; i++ {
			var seed [32]byte
			seed[0], seed[1] = byte(i), 0x9c
			_, _ = rand.NewChaCha8(seed).Read(buf)
			l, err := rawLayer(
				phEntry{hdr: tar.Header{Name: "big/", Typeflag: tar.TypeDir, Mode: 0o755}},
				phEntry{hdr: tar.Header{Name: fmt.Sprintf("big/%02d.bin", i), Typeflag: tar.TypeReg, Mode: 0o644}, body: buf},
			)
			if err != nil {
				return "", err
			}
			layers = append(layers, l)
		}
		ref, _, err := w.appendTo(fx.BuilderImage, "big", layers...)
		return ref, err
	})
}

// appendBuilder pushes from plus layer as the builder :tag and returns its
// reference and the diffID hex of the layer (its directory's name in the
// store), or fails t.
func (w *phWorld) appendBuilder(t *testing.T, from, tag string, layer v1.Layer) (string, string) {
	t.Helper()
	ref, diffID, err := w.appendTo(from, tag, layer)
	if err != nil {
		t.Fatalf("make the %s builder: %v", tag, err)
	}
	return ref, diffID
}

func (w *phWorld) appendTo(from, tag string, layers ...v1.Layer) (string, string, error) {
	r, err := name.ParseReference(from)
	if err != nil {
		return "", "", err
	}
	img, err := remote.Image(r)
	if err != nil {
		return "", "", err
	}
	if img, err = mutate.AppendLayers(img, layers...); err != nil {
		return "", "", err
	}
	ref := fx.Registry.Host + "/pullhostile/builder:" + tag
	if _, err := testenv.Push(context.Background(), ref, img); err != nil {
		return "", "", err
	}
	d, err := layers[len(layers)-1].DiffID()
	if err != nil {
		return "", "", err
	}
	return ref, d.Hex, nil
}

// ---- raw layers ----

// phEntry is one raw tar entry: any type, mode bits, link names.
type phEntry struct {
	hdr  tar.Header
	body []byte
}

var phMtime = time.Date(1980, 1, 1, 0, 0, 1, 0, time.UTC)

// rawLayer makes an OCI layer (gzip, types.OCILayer, as
// testenv.LayerFromFiles) of the entries as given: devices, hard links,
// whiteouts, setuid bits, names with "..".
func rawLayer(entries ...phEntry) (v1.Layer, error) {
	return gzipLayer(func(tw *tar.Writer) error {
		for _, e := range entries {
			h := e.hdr
			h.ModTime = phMtime
			if h.Typeflag == tar.TypeReg {
				h.Size = int64(len(e.body))
			}
			if err := tw.WriteHeader(&h); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			if _, err := tw.Write(e.body); err != nil {
				return err
			}
		}
		return nil
	})
}

// bombLayer is a layer of n identical empty directory entries: a blob of a
// few MiB that is n tar headers long.
func bombLayer(n int) (v1.Layer, error) {
	return gzipLayer(func(tw *tar.Writer) error {
		h := tar.Header{Name: "bomb/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: phMtime, Format: tar.FormatUSTAR}
		for i := 0; i < n; i++ {
			hh := h
			if err := tw.WriteHeader(&hh); err != nil {
				return err
			}
		}
		return nil
	})
}

// gzipLayer compresses the tar stream write makes once, in memory.
func gzipLayer(write func(*tar.Writer) error) (v1.Layer, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	if err := write(tw); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// ---- running cipack ----

// phEnv is one row: its cipack TMPDIR, its fresh store, the stores it
// used.
type phEnv struct {
	w         *phWorld
	slug      string
	tmp       string
	store     string
	stores    []string
	killedPid int
}

var phSeq atomic.Int64

func phUnique() string { return fmt.Sprintf("%d-%d", os.Getpid(), phSeq.Add(1)) }

func (w *phWorld) newEnv(t *testing.T, row string) *phEnv {
	slug := strings.ToLower(strings.SplitN(row, "_", 2)[0])
	e := &phEnv{w: w, slug: "row" + slug}
	e.tmp = filepath.Join(fx.Dir, "pullhostile-tmp-"+e.slug+"-"+phUnique())
	if err := os.Mkdir(e.tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(e.tmp, 0o777|fs.ModeSticky); err != nil { // as /tmp
		t.Fatal(err)
	}
	e.store = e.newStore()
	return e
}

func (e *phEnv) newStore() string {
	s := filepath.Join(fx.Dir, "pullhostile-store-"+e.slug+"-"+phUnique())
	e.stores = append(e.stores, s)
	return s
}

// phRun is one finished `cipack build`.
type phRun struct {
	stdout, stderr string
	code           int // -1: killed by a signal
	pid            int
	app, store     string
	took           time.Duration
}

func (r phRun) out() string { return r.stdout + r.stderr }

func (r phRun) log() string {
	return fmt.Sprintf("exit %d (cipack pid %d)\n--- stderr ---\n%s\n--- stdout ---\n%s", r.code, r.pid, r.stderr, r.stdout)
}

func (r phRun) mustSucceed(t *testing.T, what string) {
	t.Helper()
	r.noCrash(t)
	if r.code != 0 {
		t.Fatalf("%s: want exit 0, got %s", what, r.log())
	}
}

// cleanRefusal wants exit 13 with the entry named in the message.
func (r phRun) cleanRefusal(t *testing.T, what, entry string) {
	t.Helper()
	r.noCrash(t)
	if r.code != exit.Sandbox || !strings.Contains(r.stderr, entry) {
		t.Errorf("%s: want a clean refusal, exit %d naming %q; got %s", what, exit.Sandbox, entry, r.log())
	} else {
		t.Logf("refused: %s", grepLines(r.stderr, regexp.QuoteMeta(entry)))
	}
}

// mustExplain wants a failure to say why on stderr.
func (r phRun) mustExplain(t *testing.T) {
	t.Helper()
	if strings.TrimSpace(r.stderr) == "" {
		t.Errorf("exit %d with nothing on stderr", r.code)
	}
}

func (r phRun) noCrash(t *testing.T) {
	t.Helper()
	if strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "goroutine ") && strings.Contains(r.stderr, "[running]") {
		t.Errorf("cipack crashed: %s", r.log())
	}
}

// phProc is a started `cipack build`.
type phProc struct {
	cmd       *exec.Cmd
	out, errb bytes.Buffer
	app       string
	store     string
	began     time.Time
	lcBefore  map[int]bool
	cancel    context.CancelFunc
	done      chan struct{}
	waitErr   error
	ctx       context.Context
}

// start runs `cipack build` in pull mode with the example app in a fresh
// directory, builder and store as given, and TMPDIR the row's.
func (e *phEnv) start(t *testing.T, store, builder string, args ...string) *phProc {
	t.Helper()
	app := filepath.Join(fx.Dir, "pullhostile-ws-"+e.slug+"-"+phUnique())
	root, _ := testenv.ModuleRoot()
	if err := copyDir(filepath.Join(root, "examples", "app"), app); err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"build", "--builder", builder, "--image", fx.Registry.Host + "/pullhostile/" + e.slug + ":latest",
		"--path", app, "--source-root", app, "--cnb-dir", filepath.Join(fx.Dir, "no-cnb"), "--builder-cache", store}, args...)
	p := &phProc{app: app, store: store, done: make(chan struct{})}
	p.ctx, p.cancel = context.WithTimeout(context.Background(), 10*time.Minute)
	p.cmd = exec.CommandContext(p.ctx, fx.Cipack, argv...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TMPDIR=") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Env = append(p.cmd.Env, "TMPDIR="+e.tmp)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errb
	p.lcBefore = lifecyclePids()
	p.began = time.Now()
	if err := p.cmd.Start(); err != nil {
		p.cancel()
		t.Fatalf("start cipack: %v", err)
	}
	if !slices.Contains(e.stores, store) {
		e.stores = append(e.stores, store)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	return p
}

func (p *phProc) wait(t *testing.T) phRun {
	t.Helper()
	<-p.done
	defer p.cancel()
	r := phRun{stdout: p.out.String(), stderr: p.errb.String(), code: p.cmd.ProcessState.ExitCode(), pid: p.cmd.Process.Pid,
		app: p.app, store: p.store, took: time.Since(p.began)}
	if errors.Is(p.ctx.Err(), context.DeadlineExceeded) {
		t.Errorf("cipack did not finish within 10 minutes (killed): %s", r.log())
	}
	return r
}

// build runs one build to its end and checks what every run must leave.
func (e *phEnv) build(t *testing.T, store, builder string, args ...string) phRun {
	t.Helper()
	p := e.start(t, store, builder, args...)
	r := p.wait(t)
	t.Logf("cipack build --builder %s: exit %d in %s", builder, r.code, r.took.Round(time.Millisecond))
	e.afterRun(t, r, p.lcBefore)
	return r
}

// afterRun checks what a finished cipack leaves: no process, no temp dir
// of its pid, no mount, no half-unpacked layer.
func (e *phEnv) afterRun(t *testing.T, r phRun, lcBefore map[int]bool) {
	t.Helper()
	if left := e.buildProcs(r, lcBefore, 5*time.Second); len(left) > 0 {
		t.Errorf("processes of the build (cipack pid %d) still run after it exited:\n%s", r.pid, strings.Join(left, "\n"))
	}
	for _, dir := range []string{e.tmp, os.TempDir()} {
		var left []string
		for _, prefix := range []string{"cipack-sandbox-", "cipack-layers-"} {
			left = append(left, pidEntries(dir, prefix, r.pid)...)
		}
		if len(left) > 0 {
			t.Errorf("cipack %d left temp dirs in %s: %v", r.pid, dir, left)
		}
	}
	if m := e.mounts(); len(m) > 0 {
		t.Errorf("mounts left on the host after cipack %d:\n%s", r.pid, strings.Join(m, "\n"))
	}
	if u := unpackDirs(r.store); len(u) > 0 {
		t.Errorf(".unpack-* dirs left in the store after cipack %d: %v", r.pid, u)
	}
}

// buildProcs lists the processes that belong to run r (cipack itself, its
// helpers and runtimes, the lifecycle): none may outlive it. It waits up
// to patience for them to go.
func (e *phEnv) buildProcs(r phRun, lcBefore map[int]bool, patience time.Duration) []string {
	deadline := time.Now().Add(patience)
	for {
		var left []string
		entries, _ := os.ReadDir("/proc")
		for _, de := range entries {
			pid, err := strconv.Atoi(de.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			raw, err := os.ReadFile(filepath.Join("/proc", de.Name(), "cmdline"))
			if err != nil || len(raw) == 0 {
				continue // gone, or a zombie
			}
			cmdline := strings.TrimSpace(strings.ReplaceAll(string(raw), "\x00", " "))
			cwd, _ := os.Readlink(filepath.Join("/proc", de.Name(), "cwd"))
			within := func(dir string) bool { return dir != "" && (cwd == dir || strings.HasPrefix(cwd, dir+"/")) }
			var why string
			switch {
			case strings.Contains(cmdline, fx.Cipack):
				why = "runs this test's cipack"
			case within(r.app) || strings.Contains(cmdline, r.app):
				why = "in the app dir"
			case within(e.tmp) || strings.Contains(cmdline, e.tmp):
				why = "in cipack's temp dir"
			case within(r.store) || strings.Contains(cmdline, r.store):
				why = "in the store"
			case strings.Contains(cmdline, "/cnb/lifecycle") && !lcBefore[pid]:
				why = "a lifecycle started during the run"
			default:
				continue
			}
			left = append(left, fmt.Sprintf("pid %d (%s): cwd %s: %s", pid, why, cwd, cmdline))
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lifecyclePids are the processes running a /cnb/lifecycle binary now
// (other tests' own), so a run is blamed only for new ones.
func lifecyclePids() map[int]bool {
	out := map[int]bool{}
	entries, _ := os.ReadDir("/proc")
	for _, de := range entries {
		pid, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		if raw, err := os.ReadFile(filepath.Join("/proc", de.Name(), "cmdline")); err == nil && bytes.Contains(raw, []byte("/cnb/lifecycle")) {
			out[pid] = true
		}
	}
	return out
}

// mounts lists the host mounts under this row's dirs or named like a
// sandbox's.
func (e *phEnv) mounts() []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		hit := strings.Contains(line, e.tmp) || strings.Contains(line, "cipack-sandbox-") || strings.Contains(line, e.w.canary)
		for _, s := range e.stores {
			hit = hit || strings.Contains(line, s)
		}
		if hit {
			out = append(out, line)
		}
	}
	return out
}

// finish checks the row as a whole: the canary and host files, the row's
// temp dir, every store it used.
func (e *phEnv) finish(t *testing.T, before map[string]string) {
	t.Helper()
	if diffs := factsDiff(before, hostFacts(e.w.canary)); len(diffs) > 0 {
		t.Errorf("outside the store, the temp dir and the build's dirs, the row changed:\n%s", strings.Join(diffs, "\n"))
	}
	entries, _ := os.ReadDir(e.tmp)
	var bad, other []string
	for _, de := range entries {
		if strings.HasPrefix(de.Name(), "cipack-sandbox-") || strings.HasPrefix(de.Name(), "cipack-layers-") {
			bad = append(bad, de.Name())
		} else {
			other = append(other, de.Name())
		}
	}
	if len(bad) > 0 {
		t.Errorf("left in cipack's temp dir %s after the row: %v", e.tmp, bad)
	}
	if len(other) > 0 {
		t.Logf("also left in cipack's temp dir %s (not checked): %v", e.tmp, other)
	}
	for _, s := range e.stores {
		if u := unpackDirs(s); len(u) > 0 {
			t.Errorf(".unpack-* dirs left in the store %s: %v", s, u)
		}
	}
}

// ---- host facts ----

// factsDiff lists what changed between two hostFacts.
func factsDiff(before, after map[string]string) []string {
	var diffs []string
	for p, d := range before {
		if a, ok := after[p]; !ok {
			diffs = append(diffs, "gone: "+p)
		} else if a != d {
			diffs = append(diffs, fmt.Sprintf("changed: %s\n  before %s\n  after  %s", p, d, a))
		}
	}
	for p, a := range after {
		if _, ok := before[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("new: %s (%s)", p, a))
		}
	}
	sort.Strings(diffs)
	return diffs
}

// makeCanary makes a small tree outside the store, the temp dirs and the
// builds' dirs, with old mtimes: rows check that none of it changes and
// nothing appears in it.
func makeCanary(t *testing.T) string {
	// Not under /tmp: row 1 points the builder's /tmp into the canary,
	// and a target under /tmp would make a symlink loop in the container's
	// root (runc refuses it, hiding what the other targets do).
	dir, err := os.MkdirTemp("/var/tmp", "pullhostile-canary-")
	if err != nil {
		t.Fatalf("make the canary dir outside /tmp: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "keep.txt"), []byte("canary: must not change\n"), 0o640))
	must(os.Mkdir(filepath.Join(dir, "dir"), 0o750))
	must(os.WriteFile(filepath.Join(dir, "dir", "inner"), []byte("inner canary\n"), 0o600))
	must(os.Symlink("keep.txt", filepath.Join(dir, "link")))
	// Row 1's existing targets.
	must(os.Mkdir(filepath.Join(dir, "existing"), 0o755))
	times := []string{"keep.txt", "dir/inner", "dir"}
	for _, d := range []string{"ws", "layers", "platform", "tmp", "dev"} {
		must(os.Mkdir(filepath.Join(dir, "existing", d), 0o755))
		must(os.WriteFile(filepath.Join(dir, "existing", d, "keep"), []byte(d+" canary\n"), 0o644))
		times = append(times, "existing/"+d+"/keep", "existing/"+d)
	}
	// A runtime that writes through the builder's /dev link replaces
	// dev/ptmx (it removes what is there first): it would be the host's.
	must(os.WriteFile(filepath.Join(dir, "existing", "dev", "ptmx"), []byte("not a ptmx: canary\n"), 0o644))
	times = append([]string{"existing/dev/ptmx"}, times...)
	must(os.WriteFile(filepath.Join(dir, "existing", "resolv.conf"), []byte("nameserver 192.0.2.1 # canary\n"), 0o644))
	times = append(times, "existing/resolv.conf", "existing", ".")
	for _, p := range times {
		must(os.Chtimes(filepath.Join(dir, p), old, old))
	}
	return dir
}

// hostFacts describes the canary tree, the host files the rows aim at and
// the host's top-level entries.
func hostFacts(canary string) map[string]string {
	facts := map[string]string{}
	_ = filepath.WalkDir(canary, func(p string, _ fs.DirEntry, err error) error {
		facts[p] = describe(p)
		return nil
	})
	for _, p := range []string{"/etc/passwd", "/etc/shadow", "/etc/group", "/etc/resolv.conf", "/etc/hosts"} {
		facts[p] = describe(p)
		if real, err := filepath.EvalSymlinks(p); err == nil && real != p {
			facts[p+" -> "+real] = describe(real)
		}
	}
	for n := range testenv.RootEntries() {
		if phRootName(n) {
			facts["/"+n+" (a top-level entry)"] = "present"
		}
	}
	return facts
}

// phRootName tells the top-level names a row's layers could make at the
// host's root if an entry escaped, from the others: tests running beside
// this one make and remove their own mount points there (/workspace,
// /layers, /cnb, /cipack-src-*), so those are not checked here; row 1's
// canary targets stand for the mount targets.
func phRootName(n string) bool {
	switch n {
	case "evil", "evil2", "bomb", "big", "zeros", "suidbox", "suidprobe":
		return true
	}
	return strings.Contains(n, "pullhostile") || strings.HasPrefix(n, ".wh.")
}

// describe is one path's lstat facts and content hash.
func describe(p string) string {
	fi, err := os.Lstat(p)
	if err != nil {
		return "error: " + err.Error()
	}
	st := fi.Sys().(*syscall.Stat_t)
	s := fmt.Sprintf("mode=%v uid=%d gid=%d nlink=%d size=%d mtime=%s ino=%d", fi.Mode(), st.Uid, st.Gid, st.Nlink, fi.Size(),
		fi.ModTime().UTC().Format(time.RFC3339Nano), st.Ino)
	if fi.Mode()&fs.ModeSymlink != 0 {
		l, _ := os.Readlink(p)
		s += " link=" + l
	}
	if fi.Mode().IsRegular() {
		s += " sha256=" + regularSum(p)
	}
	return s
}

// regularSum hashes p's content if p is still a regular file, never
// following a link nor opening a FIFO or device: what a runtime planted
// in the canary (a link to /proc/self/fd/1, say) must not hang the test.
func regularSum(p string) string {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "unreadable"
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "not-regular"
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "unreadable"
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// ---- store facts ----

// unpackDirs lists the half-unpacked layer dirs (.unpack-*) in a store.
func unpackDirs(store string) []string {
	var out []string
	for _, dir := range []string{store, filepath.Join(store, "layers")} {
		entries, _ := os.ReadDir(dir)
		for _, de := range entries {
			if strings.HasPrefix(de.Name(), ".unpack-") {
				out = append(out, filepath.Join(dir, de.Name()))
			}
		}
	}
	return out
}

var hexName = regexp.MustCompile(`^[0-9a-f]{64}$`)

// storeLayers fingerprints each unpacked layer of a store (its dir named
// by diffID hex): names, types, modes, owners, link targets, contents.
func storeLayers(t *testing.T, store string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, _ := os.ReadDir(filepath.Join(store, "layers"))
	for _, de := range entries {
		if !hexName.MatchString(de.Name()) {
			continue
		}
		sum, err := treeSum(filepath.Join(store, "layers", de.Name()))
		if err != nil {
			t.Fatalf("read the store: %v", err)
		}
		out[de.Name()] = sum
	}
	return out
}

func treeSum(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s %v %d:%d rdev=%d", rel, fi.Mode(), st.Uid, st.Gid, st.Rdev)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			fmt.Fprintf(h, " -> %s", l)
		case fi.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			fmt.Fprintf(h, " mtime=%d", fi.ModTime().UnixNano())
		}
		h.Write([]byte{'\n'})
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

// checkStoreKept wants every layer of before still in the store,
// unchanged.
func (e *phEnv) checkStoreKept(t *testing.T, store string, before map[string]string) {
	t.Helper()
	after := storeLayers(t, store)
	for id, sum := range before {
		if a, ok := after[id]; !ok {
			t.Errorf("the store lost layer %s (a good build's)", id)
		} else if a != sum {
			t.Errorf("the store's layer %s (a good build's) changed", id)
		}
	}
}

// storeDevices lists the device nodes in a store's layers, whiteouts
// (0/0 character devices) aside.
func storeDevices(t *testing.T, store string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(filepath.Join(store, "layers"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeDevice == 0 {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode()&fs.ModeCharDevice != 0 && st.Rdev == 0 {
			return nil // a whiteout
		}
		out = append(out, fmt.Sprintf("%s (%v rdev %d:%d)", p, fi.Mode(), (st.Rdev>>8)&0xfff, (st.Rdev&0xff)|((st.Rdev>>12)&0xfff00)))
		return nil
	})
	return out
}

// storeInode finds a file of the store with inode ino on the store's
// filesystem: a hard link to a host file would be one.
func storeInode(t *testing.T, store string, ino uint64) string {
	t.Helper()
	if ino == 0 {
		return ""
	}
	var found string
	_ = filepath.WalkDir(store, func(p string, d fs.DirEntry, err error) error {
		if err != nil || found != "" || !d.Type().IsRegular() {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.Sys().(*syscall.Stat_t).Ino == ino {
			found = p
		}
		return nil
	})
	return found
}

// ---- small helpers ----

// pidEntries lists dir's entries named prefix + "<pid>-...", or any
// cipack-* name holding "-<pid>-" when prefix is "cipack-".
func pidEntries(dir, prefix string, pid int) []string {
	if pid <= 0 {
		return nil
	}
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, de := range entries {
		n := de.Name()
		if strings.HasPrefix(n, prefix+strconv.Itoa(pid)+"-") || prefix == "cipack-" && strings.HasPrefix(n, prefix) && strings.Contains(n, "-"+strconv.Itoa(pid)+"-") {
			out = append(out, n)
		}
	}
	return out
}

// grepLines returns the lines of s matching the regexp pattern.
func grepLines(s, pattern string) string {
	re := regexp.MustCompile(pattern)
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if re.MatchString(l) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
