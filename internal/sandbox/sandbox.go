// Package sandbox is the container boundary of a build. In pull mode each
// lifecycle phase runs in a container made by an OCI runtime already on
// the host (crun or runc), from a runtime-spec config this package writes:
// pivot_root into the builder's layers (a read-only overlay with a
// throwaway tmpfs upper layer, mounted nosuid and nodev), a minimal /dev,
// masked and read-only /proc and /sys paths, no_new_privs, a seccomp
// filter, and only the capabilities a phase needs (none for build code).
// The runtime resolves mount targets inside the root, so a builder's own
// symlinks cannot steer a mount onto the host.
//
// Around the runtime sits a helper: cipack itself again (the hidden
// `__sandbox` command) as PID 1 of a new PID and mount namespace. It
// mounts the tmpfs and the overlay, writes the bundle and runs the
// runtime. When cipack dies, even by SIGKILL, the helper gets SIGKILL
// (Pdeathsig) and the kernel ends every process in its PID namespace,
// the containers' included; the mounts go with the namespace.
//
// In-builder mode with the app bound at /workspace has no runtime (the
// step's own image is the root): the helper applies the binds in its
// private mount namespace, mounts a /proc for its PID namespace and runs
// the lifecycle, so no build process outlives it there either.
package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cipack/cipack/internal/scratch"
)

// Command is the hidden command name of the helper.
const Command = "__sandbox"

// SetupFailed is the helper's exit code when it could not make the
// sandbox (no lifecycle phase exits with it): the last line it wrote
// says why.
const SetupFailed = 125

// Bind puts a host path at a path inside the sandbox.
type Bind struct {
	Host string `json:"host"`
	Path string `json:"path"`
	// ReadOnly binds are mounted read-only.
	ReadOnly bool `json:"readOnly,omitempty"`
}

// Spec is one sandboxed process.
type Spec struct {
	// Runtime is the OCI runtime's path; empty means bind mode (the
	// in-builder /workspace bind: this filesystem, no container).
	Runtime string `json:"runtime,omitempty"`
	// Layers are the unpacked builder layers, lowest first. Empty with a
	// Runtime: a minimal root holding only the binds (the trusted phases).
	Layers []string `json:"layers,omitempty"`
	Binds  []Bind   `json:"binds"`
	Argv   []string `json:"argv"`
	Env    []string `json:"env"`
	Dir    string   `json:"dir"`
	// UID and GID run the process; Caps are the capabilities it keeps
	// (none for build code). Container mode only.
	UID  uint32   `json:"uid"`
	GID  uint32   `json:"gid"`
	Caps []string `json:"caps,omitempty"`
	// Work is an empty host directory the helper mounts a tmpfs on: the
	// bundle, the runtime's state, the overlay's upper layer.
	Work string `json:"work"`
	// Network, when set, gives the container a network namespace of its
	// own (network.go); nil keeps the host's.
	Network *Network `json:"network,omitempty"`
}

// scratchPrefix names the helpers' mount points in the temp dir; a run
// killed before its cleanup leaves an empty one, swept by the next run.
const scratchPrefix = "cipack-sandbox-"

// Wrap returns the command that runs spec through self (the cipack
// binary), and the cleanup to call after it exited. The spec travels on
// the helper's stdin, not in its environment: a trusted phase's spec
// holds registry credentials, and an environment block stays readable in
// /proc for the process's life.
func Wrap(self string, spec Spec) (*exec.Cmd, func(), error) {
	work, err := scratch.Dir("", scratchPrefix)
	if err != nil {
		return nil, nil, err
	}
	spec.Work = work
	cleanup := func() { _ = os.Remove(work) }
	b, err := json.Marshal(spec)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	cmd := exec.Command(self, Command)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Stdin = bytes.NewReader(b)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	return cmd, cleanup, nil
}

// Probe reports whether the bind mode works here (root, and allowed to
// make mount and PID namespaces: a container without CAP_SYS_ADMIN is not).
// It asks the kernel directly rather than starting the helper (two
// process starts were a third of cipack's fixed cost on a warm build):
// one thread of this process unshares both namespaces and is then let
// die, locked, so the Go runtime never runs anything on it again. It
// must not join its namespaces back instead: setns resets the thread's
// root and working directory to the namespace's root, so in a chroot or
// a container every goroutine scheduled on it afterwards saw the host's
// files, or "/" as its working directory. The probe thread starts
// nothing: a child started from it (Pdeathsig) would be killed when it
// ends. The answer is kept.
func Probe(string) error { return probeOnce() }

var probeOnce = sync.OnceValue(func() error {
	if err := rootIsMount(); err != nil {
		return err
	}
	if err := onDoomedThread(unshareBoth); err != nil {
		return fmt.Errorf("unshare mount and PID namespaces: %w", err)
	}
	return nil
})

// rootIsMount refuses a root that is not a mount point (a chroot into a
// plain directory): the helper cannot make its mounts private there, so
// a bind would fail after the work began. Kernels before 5.8 do not say;
// they pass.
func rootIsMount() error {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, "/", 0, 0, &st); err != nil {
		return nil
	}
	if st.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && st.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return errors.New("the root is not a mount point (a chroot?): its mounts cannot be made private")
	}
	return nil
}

// onDoomedThread runs f on a thread of its own that ends with it: the
// goroutine locks its thread and returns without unlocking it, so the
// runtime ends the thread. The main thread is never the one: Go cannot
// end it and parks it instead, in f's namespaces, and /proc/self (the
// process's root, cwd and mounts as others see them) shows the main
// thread's. So a goroutine that lands on it keeps it and hands f to
// another goroutine, which then cannot land there.
func onDoomedThread(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			defer runtime.UnlockOSThread()
			errc <- onDoomedThread(f)
			return
		}
		errc <- f() // and the thread ends, still locked
	}()
	return <-errc
}

// unshareBoth is the helper's unshare (Wrap's Cloneflags) on the calling
// thread, which must be one that ends right after.
func unshareBoth() error {
	return unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_NEWPID)
}

// Run is the helper's side, PID 1 of its namespaces: it reads the spec
// from stdin, prepares the filesystem and runs the process (through the
// runtime, or directly in bind mode), forwarding SIGINT and SIGTERM, and
// returns the process's exit code.
func Run(stdin io.Reader) (int, error) {
	raw, err := io.ReadAll(io.LimitReader(stdin, 16<<20))
	if err != nil {
		return 1, fmt.Errorf("sandbox spec: %w", err)
	}
	var spec Spec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return 1, fmt.Errorf("sandbox spec: %w", err)
	}
	if len(spec.Argv) == 0 {
		return 1, fmt.Errorf("sandbox spec: no command")
	}
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return 1, fmt.Errorf("make mounts private: %w", err)
	}
	// The host's /proc would show the host's processes to this PID
	// namespace; a fresh one shows only ours (and /proc/self is right).
	if err := syscall.Mount("proc", "/proc", "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		return 1, fmt.Errorf("mount /proc: %w", err)
	}
	if spec.Runtime == "" {
		if err := applyBinds(spec.Binds); err != nil {
			return 1, err
		}
		return runDirect(spec)
	}
	return runContainer(spec)
}

// applyBinds mounts each bind on this filesystem (bind mode: the host's
// own paths, which cipack chose, so they are not resolved in a root).
func applyBinds(binds []Bind) error {
	for _, b := range binds {
		if err := syscall.Mount(b.Host, b.Path, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s at %s: %w", b.Host, b.Path, err)
		}
		if b.ReadOnly {
			if err := syscall.Mount("", b.Path, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
				return fmt.Errorf("bind %s read-only: %w", b.Path, err)
			}
		}
	}
	return nil
}

// runDirect runs the process in this namespace (bind mode).
func runDirect(spec Spec) (int, error) {
	dir := spec.Dir
	if dir == "" {
		dir = "/"
	}
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Env, cmd.Dir = spec.Env, dir
	return supervise(cmd)
}

// mountWork puts a tmpfs on the work dir, so nothing the run writes there
// (bundle, state, upper layer) reaches the host's disk or outlives it.
func mountWork(work string) error {
	if err := syscall.Mount("tmpfs", work, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=0700"); err != nil {
		return fmt.Errorf("tmpfs on %s: %w", work, err)
	}
	for _, d := range []string{"bundle", "state", "upper", "ovl", "l"} {
		if err := os.Mkdir(filepath.Join(work, d), 0o700); err != nil {
			return err
		}
	}
	// The overlay's root takes the upper dir's mode: the image's "/".
	if err := os.Chmod(filepath.Join(work, "upper"), 0o755); err != nil {
		return err
	}
	return nil
}

// mountRoot makes the container's root under work: the builder's layers
// as an overlay, or an empty directory for the minimal root.
//
// A builder can have up to 127 layers (Paketo's do), and the overlay's
// options must fit one page: 127 store paths do not. So the layers are
// named by short relative links (l/0, l/1, …, as container storage
// drivers do) and the mount is made from inside work.
func mountRoot(spec Spec) (string, error) {
	root := filepath.Join(spec.Work, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return "", err
	}
	if len(spec.Layers) == 0 {
		return root, nil
	}
	lower := make([]byte, 0, 4*len(spec.Layers))
	for i := len(spec.Layers) - 1; i >= 0; i-- {
		link := "l/" + strconv.Itoa(i)
		if err := os.Symlink(spec.Layers[i], filepath.Join(spec.Work, link)); err != nil {
			return "", err
		}
		if len(lower) > 0 {
			lower = append(lower, ':')
		}
		lower = append(lower, link...)
	}
	if err := os.Chdir(spec.Work); err != nil {
		return "", err
	}
	opts := "lowerdir=" + string(lower) + ",upperdir=upper,workdir=ovl"
	if err := syscall.Mount("overlay", "root", "overlay", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		return "", fmt.Errorf("mount the builder's %d layers (overlay): %w", len(spec.Layers), err)
	}
	return root, nil
}
