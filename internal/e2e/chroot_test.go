package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cipack/cipack/internal/testenv"
)

// A root in-builder build in a chroot (the builder's files under a
// directory of the host, as CI runners and build farms chroot): the app
// is bound at /workspace by cipack's helper, which cipack starts from its
// own path after probing for namespaces. The build works, runs no host
// file (the host holds a trap at cipack's path in the chroot, and at
// nothing else), sweeps nothing in the host's directory of the chroot's
// TMPDIR, and relative --cache-dir and --sbom-dir land in the chroot's
// working directory.
func TestInBuilderBuildInAChrootKeepsItsRoot(t *testing.T) {
	needFixture(t)
	for _, mounted := range []bool{true, false} {
		name := map[bool]string{true: "root_is_a_mount", false: "root_is_a_plain_directory"}[mounted]
		t.Run(name, func(t *testing.T) { chrootBuild(t, mounted) })
	}
}

// chrootBuild builds in a fresh chroot whose root is a mount point (as a
// container's: the app is bound at /workspace) or a plain directory (the
// helper could not make its mounts private there: the lifecycle runs as
// cipack's child, the app where it is).
func chrootBuild(t *testing.T, mounted bool) {
	c := newChroot(t)
	r := c.build(t, mounted, "--path", "app", "--cache-dir", ".cache", "--sbom-dir", "sbom",
		"--image", fx.Registry.Host+"/chroot/app:latest", "--run-image", fx.RunImage)
	if _, err := os.Stat(c.trapRan); err == nil {
		b, _ := os.ReadFile(c.trapRan)
		t.Errorf("cipack ran the host's file at its own path (as the sandbox helper), and gave it:\n%s", b)
	}
	if r.code != 0 {
		t.Fatalf("build in the chroot: exit %d\n%s", r.code, r.stderr)
	}
	if bound := strings.Contains(r.stderr, "bound at /workspace"); bound != mounted {
		t.Errorf("the app bound at /workspace: %v, want %v:\n%s", bound, mounted, r.stderr)
	}
	if _, err := os.Stat(c.hostCanary); err != nil {
		t.Errorf("the host's %s lost its stale cipack-sandbox-* entry (a sweep of the host's TMPDIR): %v", filepath.Dir(c.hostCanary), err)
	}
	if mounted {
		if _, err := os.Stat(c.inside(c.tmp, filepath.Base(c.hostCanary))); err == nil {
			t.Errorf("the chroot's own stale cipack-sandbox-* entry was not swept")
		}
	}
	for _, d := range []string{".cache", "sbom"} {
		if filesUnder(t, c.inside("job", d)) == 0 {
			t.Errorf("relative %s: nothing in the chroot's /job/%s", d, d)
		}
		if _, err := os.Stat(c.inside(d)); err == nil {
			t.Errorf("relative %s landed in the chroot's root", d)
		}
	}
	if t.Failed() {
		t.Logf("cipack's log:\n%s", r.stderr)
	}
}

// chroot is a root directory made of the host's /usr and /etc (bound
// read-only), the builder's /cnb, fresh /layers and /workspace, a /job
// holding the app, and cipack at self. self and tmp are paths that exist
// on the host as well: there self is a trap that records being run, and
// tmp holds a stale cipack-sandbox-* entry, so the test sees whether
// cipack ever resolved them against the host's root.
type chroot struct {
	root, self, tmp     string
	trapRan, hostCanary string
	uid, gid            int
}

func newChroot(t *testing.T) *chroot {
	t.Helper()
	base := filepath.Join(fx.Dir, "chroot-"+randSuffix())
	c := &chroot{root: filepath.Join(base, "root"), self: filepath.Join(base, "bin", "cipack"), tmp: filepath.Join(base, "tmp"),
		trapRan: filepath.Join(base, "trap-ran"), uid: fx.UID, gid: fx.GID}
	for _, d := range []string{"usr", "etc", "dev", "proc", "cnb", "layers", "workspace", "job", strings.TrimPrefix(filepath.Dir(c.self), "/"),
		strings.TrimPrefix(c.tmp, "/")} {
		chrootMkdir(t, c.inside(d))
	}
	for _, l := range []string{"bin", "lib", "lib64", "sbin"} {
		if target, err := os.Readlink("/" + l); err == nil {
			if err := os.Symlink(target, c.inside(l)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Chmod(c.inside(c.tmp), 0o1777); err != nil {
		t.Fatal(err)
	}
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := copyDir(filepath.Join(root, "examples", "app"), c.inside("job", "app")); err != nil {
		t.Fatal(err)
	}
	chrootCopy(t, fx.Cipack, c.inside(c.self), 0o755)
	// The host's side of the two shared paths.
	chrootMkdir(t, filepath.Dir(c.self))
	trap := "#!/bin/sh\n{ echo \"argv: $0 $*\"; cat; } > " + c.trapRan + "\nexit 1\n"
	if err := os.WriteFile(c.self, []byte(trap), 0o755); err != nil {
		t.Fatal(err)
	}
	stale := "cipack-sandbox-" + strconv.Itoa(deadPID()) + "-stale"
	c.hostCanary = filepath.Join(c.tmp, stale)
	chrootMkdir(t, c.hostCanary)
	chrootMkdir(t, c.inside(c.tmp, stale))
	return c
}

func (c *chroot) inside(p ...string) string {
	return filepath.Join(append([]string{c.root}, p...)...)
}

// build runs cipack build args as root in the chroot, from /job, in a
// private mount namespace where the host's /usr, /etc and /dev are bound
// in, and the chroot's root is a mount point when mounted (as a
// container's is).
func (c *chroot) build(t *testing.T, mounted bool, args ...string) run {
	t.Helper()
	script := `set -e
r=$1; cnb=$2; mounted=$3; shift 3
if [ "$mounted" = true ]; then mount --bind "$r" "$r"; fi
mount --rbind /usr "$r/usr"; mount -o remount,bind,ro "$r/usr"
mount --rbind /etc "$r/etc"; mount -o remount,bind,ro "$r/etc"
mount --rbind /dev "$r/dev"
mount -t proc proc "$r/proc"
mount --rbind "$cnb" "$r/cnb"
cd "$r"
exec chroot "$r" /bin/sh -c 'cd /job && exec "$@"' chroot-job "$@"
`
	argv := append([]string{"-m", "--propagation", "private", "--", "/bin/sh", "-c", script, "cipack-chroot", c.root, fx.BuilderDir,
		strconv.FormatBool(mounted), c.self, "build"}, args...)
	cmd := exec.Command("unshare", argv...)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "TMPDIR=" + c.tmp, "HOME=/root",
		"CNB_USER_ID=" + strconv.Itoa(c.uid), "CNB_GROUP_ID=" + strconv.Itoa(c.gid),
		`CNB_REGISTRY_AUTH={"other.example": "Bearer chroot-s3cret"}`}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	_ = cmd.Run()
	return run{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
}

func chrootMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func chrootCopy(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

func filesUnder(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// deadPID is a process id no process has: the stale entry's owner.
func deadPID() int {
	for pid := 4_000_000; ; pid-- {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return pid
		}
	}
}
