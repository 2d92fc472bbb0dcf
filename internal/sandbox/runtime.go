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
	"strconv"
	"strings"
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

// startContainer creates the container, starts it and waits for its
// process. create and start are separate calls, so a runtime that cannot
// make the container is told apart from a phase that failed: the first
// is a sandbox error, the second the phase's own exit code. The
// runtime's state lives on the helper's tmpfs, so it cannot outlive the
// run, whatever kills it.
func startContainer(runtime, work, bundle, id string) (int, error) {
	global := []string{"--root", filepath.Join(work, "state")}
	if filepath.Base(runtime) == "crun" {
		// No cgroup of its own: nothing is left in the host's cgroup tree
		// if the run is killed, and the job's cgroup still bounds it.
		// crun still inspects the tree and refuses a host in cgroup
		// hybrid mode; in the helper's mount namespace an empty tmpfs
		// hides the tree it will not use.
		global = append(global, "--cgroup-manager=disabled")
		if err := syscall.Mount("tmpfs", "/sys/fs/cgroup", "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "mode=0755"); err != nil {
			return 1, fmt.Errorf("hide the cgroup tree from crun: %w", err)
		}
	}
	rt := func(args ...string) *exec.Cmd {
		cmd := exec.Command(runtime, append(append([]string{}, global...), args...)...)
		cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
		return cmd
	}
	pidFile := filepath.Join(work, "pid")
	create := rt("create", "--bundle", bundle, "--pid-file", pidFile, id)
	// The container's stdio are create's: the helper's own.
	create.Stdout, create.Stderr = os.Stdout, os.Stderr
	if out, err := runQuiet(create); err != nil {
		return 1, fmt.Errorf("%s create: %w%s", filepath.Base(runtime), err, out)
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		return 1, fmt.Errorf("%s create: no pid file: %w", filepath.Base(runtime), err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 1 {
		return 1, fmt.Errorf("%s create: bad pid file %q", filepath.Base(runtime), raw)
	}
	// The runtime exited after create: its container process is now the
	// helper's child (the helper is PID 1 here), so the helper waits for
	// it and forwards signals to it.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if out, err := runQuiet(rt("start", id)); err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		return 1, fmt.Errorf("%s start: %w%s", filepath.Base(runtime), err, out)
	}
	go func() {
		for s := range sigs {
			_ = syscall.Kill(pid, s.(syscall.Signal))
		}
	}()
	return waitPid(pid)
}

// runQuiet runs a runtime command, returning its stderr (if not already
// redirected) to explain a failure.
func runQuiet(cmd *exec.Cmd) (string, error) {
	var errb strings.Builder
	if cmd.Stderr == nil {
		cmd.Stderr = &errb
	}
	err := cmd.Run()
	if msg := strings.TrimSpace(errb.String()); msg != "" {
		return ": " + msg, err
	}
	return "", err
}

// waitPid reaps children until pid exits and returns its exit code.
func waitPid(pid int) (int, error) {
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 1, fmt.Errorf("wait for the container: %w", err)
		}
		if got != pid {
			continue // an orphan re-parented to the helper
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ws.ExitStatus(), nil
	}
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
