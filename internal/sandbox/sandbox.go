// Package sandbox runs the lifecycle inside an unpacked builder image on a
// plain Linux host (pull mode): a private mount and PID namespace, the
// builder's layers as a read-only overlay with a throwaway upper layer,
// the app at /workspace and the platform's directories bound in, then a
// chroot. Nothing of it outlives the run: the mounts belong to the
// namespace, and every process in the PID namespace dies with its first.
//
// It works by running cipack itself again (a hidden `__sandbox` command)
// in the new namespaces, because Go cannot run code between clone and exec.
package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

// EnvSpec is the variable that carries the Spec to the helper process.
const EnvSpec = "CIPACK_SANDBOX_SPEC"

// Command is the hidden command name of the helper.
const Command = "__sandbox"

// Bind puts a host path at a path inside the sandbox.
type Bind struct {
	Host string `json:"host"`
	Path string `json:"path"`
	// ReadOnly binds are remounted read-only.
	ReadOnly bool `json:"readOnly,omitempty"`
}

// Spec is one sandboxed run.
type Spec struct {
	// Lower are the unpacked layers, lowest first.
	Lower []string `json:"lower"`
	Binds []Bind   `json:"binds"`
	// Argv and Env are the process run inside, after the chroot.
	Argv []string `json:"argv"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`
	// Work is an empty directory the helper mounts a tmpfs on (made and
	// removed by Wrap's caller, so nothing stays on the host).
	Work string `json:"work"`
}

// Wrap returns the command that runs spec in a sandbox through self (the
// cipack binary), and the cleanup to call after it exited. The caller
// starts and waits for the command like any other.
func Wrap(self string, spec Spec) (*exec.Cmd, func(), error) {
	work, err := os.MkdirTemp("", "cipack-sandbox-")
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
	cmd.Env = []string{EnvSpec + "=" + string(b)}
	flags := uintptr(syscall.CLONE_NEWNS | syscall.CLONE_NEWPID)
	if len(spec.Lower) == 0 {
		// Binds only, on this filesystem: the host's /proc stays, so the
		// PID namespace would make /proc/self lie.
		flags = syscall.CLONE_NEWNS
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags, Pdeathsig: syscall.SIGKILL}
	return cmd, cleanup, nil
}

// Probe reports whether binds are possible here (root, and allowed to
// make a mount namespace: a container without CAP_SYS_ADMIN is not).
func Probe(self string) error {
	cmd, cleanup, err := Wrap(self, Spec{Argv: []string{self, "--version"}})
	if err != nil {
		return err
	}
	defer cleanup()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Run is the helper's side: it is PID 1 of the new namespaces. It builds
// the filesystem, chroots, runs the process, forwards SIGINT/SIGTERM to it
// and returns its exit code.
func Run(raw string) (int, error) {
	var spec Spec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		return 1, fmt.Errorf("sandbox spec: %w", err)
	}
	if len(spec.Lower) == 0 {
		if err := bindOnly(spec); err != nil {
			return 1, err
		}
	} else {
		root, err := mountRoot(spec)
		if err != nil {
			return 1, err
		}
		if err := syscall.Chroot(root); err != nil {
			return 1, fmt.Errorf("chroot %s: %w", root, err)
		}
	}
	dir := spec.Dir
	if dir == "" {
		dir = "/"
	}
	if err := os.Chdir(dir); err != nil {
		return 1, fmt.Errorf("chdir %s: %w", dir, err)
	}
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Env = spec.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		return 1, fmt.Errorf("start %s: %w", spec.Argv[0], err)
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 1, err
	}
	return 0, nil
}

// bindOnly applies the binds on this filesystem, in a private mount
// namespace: in-builder mode's way to put the app at /workspace.
func bindOnly(spec Spec) error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	return applyBinds("/", spec.Binds)
}

// mountRoot assembles the sandbox's root and returns its path.
func mountRoot(spec Spec) (string, error) {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return "", fmt.Errorf("make mounts private: %w", err)
	}
	// A tmpfs holds the overlay's upper layer and the mount point, so the
	// host's disk gets nothing, whatever its filesystem.
	work := spec.Work
	if err := syscall.Mount("tmpfs", work, "tmpfs", 0, "mode=0755"); err != nil {
		return "", fmt.Errorf("tmpfs: %w", err)
	}
	upper, wdir, root := filepath.Join(work, "upper"), filepath.Join(work, "work"), filepath.Join(work, "root")
	for _, d := range []string{upper, wdir, root} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return "", err
		}
	}
	lower := make([]string, len(spec.Lower))
	for i, l := range spec.Lower {
		lower[len(spec.Lower)-1-i] = l // overlay lists the top layer first
	}
	opts := "lowerdir=" + strings.Join(lower, ":") + ",upperdir=" + upper + ",workdir=" + wdir
	if err := syscall.Mount("overlay", root, "overlay", 0, opts); err != nil {
		return "", fmt.Errorf("mount the builder's layers (overlay): %w", err)
	}
	for _, m := range []struct {
		src, target, fstype string
		flags               uintptr
		data                string
	}{
		{"proc", "/proc", "proc", syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC, ""},
		{"/dev", "/dev", "", syscall.MS_BIND | syscall.MS_REC, ""},
		{"tmpfs", "/tmp", "tmpfs", syscall.MS_NOSUID | syscall.MS_NODEV, "mode=1777"},
	} {
		t := filepath.Join(root, m.target)
		if err := os.MkdirAll(t, 0o755); err != nil {
			return "", err
		}
		if err := syscall.Mount(m.src, t, m.fstype, m.flags, m.data); err != nil {
			return "", fmt.Errorf("mount %s: %w", m.target, err)
		}
	}
	binds := spec.Binds
	if _, err := os.Stat("/etc/resolv.conf"); err == nil {
		binds = append(binds, Bind{Host: "/etc/resolv.conf", Path: "/etc/resolv.conf", ReadOnly: true})
	}
	if err := applyBinds(root, binds); err != nil {
		return "", err
	}
	return root, nil
}

// applyBinds mounts each bind under root, making its mount point.
func applyBinds(root string, binds []Bind) error {
	for _, b := range binds {
		t := filepath.Join(root, b.Path)
		fi, err := os.Stat(b.Host)
		if err != nil {
			return fmt.Errorf("bind %s: %w", b.Host, err)
		}
		if fi.IsDir() {
			err = os.MkdirAll(t, 0o755)
		} else {
			if err = os.MkdirAll(filepath.Dir(t), 0o755); err == nil {
				var f *os.File
				if f, err = os.OpenFile(t, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
					f.Close()
				}
			}
		}
		if err != nil {
			return fmt.Errorf("bind target %s: %w", b.Path, err)
		}
		if err := syscall.Mount(b.Host, t, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s at %s: %w", b.Host, b.Path, err)
		}
		if b.ReadOnly {
			if err := syscall.Mount("", t, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
				return fmt.Errorf("bind %s read-only: %w", b.Path, err)
			}
		}
	}
	return nil
}
