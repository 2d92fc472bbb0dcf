package e2e

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/safefs"
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
