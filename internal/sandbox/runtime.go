package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
)

// Runtimes are the OCI runtimes cipack uses, in order of preference. runc
// first: it keeps the overlay root's nosuid and nodev, and GitHub's
// hosted runners ship it with Docker. crun 1.8 starts a phase in half
// runc's time (26 ms against 54 ms here) but remounts the root without
// nosuid and nodev; no_new_privs still makes setuid bits inert, and the
// store holds no device nodes. Choose it with --oci-runtime crun.
var Runtimes = []string{"runc", "crun"}

// FindRuntime returns the path of the OCI runtime to use: override when
// given (a path or a name on PATH), else the first of Runtimes on PATH.
func FindRuntime(lookPath func(string) (string, error), override string) (string, error) {
	names := Runtimes
	if override != "" {
		names = []string{override}
	}
	for _, n := range names {
		if p, err := lookPath(n); err == nil {
			return p, nil
		}
	}
	if override != "" {
		return "", fmt.Errorf("OCI runtime %q not found", override)
	}
	return "", errors.New("no OCI runtime (crun or runc) on PATH")
}

// runContainer runs spec through the OCI runtime, from PID 1 of the
// helper's namespaces.
func runContainer(spec Spec) (int, error) {
	if err := mountWork(spec.Work); err != nil {
		return 1, err
	}
	root, err := mountRoot(spec)
	if err != nil {
		return 1, err
	}
	bundle := filepath.Join(spec.Work, "bundle")
	config := Config(spec, root, "cipack")
	if spec.Network != nil {
		netns, resolv, stop, err := startNetwork(spec.Network, spec.Work)
		defer stop()
		if err != nil {
			return 1, err
		}
		joinNetwork(config, netns, resolv)
	}
	if err := makeTargets(root, config.Mounts); err != nil {
		return 1, err
	}
	cfg, err := json.Marshal(config)
	if err != nil {
		return 1, err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), cfg, 0o600); err != nil {
		return 1, err
	}
	id := make([]byte, 6)
	_, _ = rand.Read(id)
	return startContainer(spec.Runtime, spec.Work, bundle, "cipack-"+hex.EncodeToString(id))
}

// startContainer runs the container through the runtime's `run`, which
// creates it, starts it, forwards signals to it and returns its exit
// code. Its pid file tells a runtime that could not make the container
// (no pid file: a sandbox error) from a phase that failed (the phase's
// own exit code). The runtime's state lives on the helper's tmpfs, so it
// cannot outlive the run, whatever kills it.
func startContainer(runtime, work, bundle, id string) (int, error) {
	args := []string{"--root", filepath.Join(work, "state")}
	if filepath.Base(runtime) == "crun" {
		// No cgroup of its own: nothing is left in the host's cgroup tree
		// if the run is killed, and the job's cgroup still bounds it.
		// crun still inspects the tree and refuses a host in cgroup
		// hybrid mode; in the helper's mount namespace an empty tmpfs
		// hides the tree it will not use.
		args = append(args, "--cgroup-manager=disabled")
		if err := syscall.Mount("tmpfs", "/sys/fs/cgroup", "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "mode=0755"); err != nil {
			return 1, fmt.Errorf("hide the cgroup tree from crun: %w", err)
		}
	}
	pidFile := filepath.Join(work, "pid")
	cmd := exec.Command(runtime, append(args, "run", "--bundle", bundle, "--pid-file", pidFile, id)...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	code, err := supervise(cmd)
	if err != nil {
		return code, err
	}
	if _, statErr := os.Stat(pidFile); statErr != nil && code != 0 {
		return code, fmt.Errorf("%s could not make the container (exit %d; its message is above)", filepath.Base(runtime), code)
	}
	return code, nil
}

// supervise starts cmd with the helper's stdout and stderr, forwards
// SIGINT and SIGTERM to it, and returns its exit code (128+N when a
// signal ended it, as a shell reports it).
func supervise(cmd *exec.Cmd) (int, error) {
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 1, fmt.Errorf("start %s: %w", cmd.Path, err)
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
