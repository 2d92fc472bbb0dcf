package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/testenv"
)

// Each TestHostileBuilder row's world: its own store and temp dir, the
// cipack runs, and the checks that nothing outside them changed.

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
