package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// StackUID is the host uid pasta runs as: root of the user namespace
// that owns build code's network namespace, mapped to nothing else. It
// is nobody's on the host and no build user's (builders use small uids).
// pasta then holds capabilities in that user namespace only, enough to
// join the network namespace, open its tap and configure it; on the host
// it is an unprivileged uid with none, so a flaw in its packet parsing
// that hostile build code finds gets neither root nor the host's
// CAP_SYS_ADMIN. The namespace is root's (the helper makes it), so a
// process of this uid outside it holds no capability in it either.
const StackUID = 0x7ffffff0

// makeOwnedNetns makes a user namespace (root mapped to StackUID) and a
// network namespace owned by it, and keeps both at userns and netns
// (bind mounts of their nsfs files). A short-lived child makes them:
// a multithreaded process cannot unshare a user namespace.
func makeOwnedNetns(userns, netns string) error {
	for _, p := range []string{userns, netns} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			return err
		}
	}
	cmd := exec.Command("/bin/sh", "-c", "read x")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: StackUID, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: StackUID, Size: 1}},
		// nsenter drops supplementary groups when it joins.
		GidMappingsEnableSetgroups: true,
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("a user and network namespace for the network stack: %w", err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	// Start returns after the maps are written and before sh runs: the
	// child is in both namespaces now.
	for name, dst := range map[string]string{"user": userns, "net": netns} {
		src := fmt.Sprintf("/proc/%d/ns/%s", cmd.Process.Pid, name)
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("keep the %s namespace at %s: %w", name, dst, err)
		}
	}
	return nil
}

// pastaInUserns is the command that runs pasta as root of the user
// namespace at userns (StackUID on the host): nsenter joins it and
// becomes uid and gid 0 there before pasta starts. The namespaces and
// the pid file reach pasta as open files (fds 3, 4, 5 named through
// /proc/self/fd): the helper's work directory is root's, 0700.
func pastaInUserns(nsenter, stack, work string, args func(netns, pidFile string) []string) (*exec.Cmd, []*os.File, error) {
	var files []*os.File
	for _, name := range []string{"userns", "netns"} {
		f, err := os.Open(filepath.Join(work, name))
		if err != nil {
			closeAll(files)
			return nil, nil, err
		}
		files = append(files, f)
	}
	pid, err := os.OpenFile(filepath.Join(work, "pasta.pid"), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err == nil {
		err = pid.Chown(StackUID, StackUID)
	}
	if err != nil {
		closeAll(append(files, pid))
		return nil, nil, fmt.Errorf("pasta's pid file: %w", err)
	}
	files = append(files, pid)
	argv := append([]string{"--user=/proc/self/fd/3", "--setuid=0", "--setgid=0", "--", stack},
		args("/proc/self/fd/4", "/proc/self/fd/5")...)
	cmd := exec.Command(nsenter, argv...)
	cmd.ExtraFiles = files
	return cmd, files, nil
}

// tunForStack makes the tun device openable by StackUID in the helper's
// mount namespace (private: the host's node keeps its mode): a node of
// its own, on a tmpfs that allows devices, bound over /dev/net/tun. On
// hosts where that node is root's and 0600, pasta, unprivileged on the
// host, could not open it; its capabilities are its user namespace's,
// which count for no host file.
func tunForStack(work string) error {
	dir := filepath.Join(work, "dev")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0700,size=64k"); err != nil {
		return fmt.Errorf("tmpfs for the stack's tun device: %w", err)
	}
	tun := filepath.Join(dir, "tun")
	if err := unix.Mknod(tun, unix.S_IFCHR|0o600, int(unix.Mkdev(10, 200))); err != nil {
		return fmt.Errorf("the stack's tun device: %w", err)
	}
	if err := os.Chown(tun, StackUID, StackUID); err != nil {
		return err
	}
	if err := unix.Mount(tun, "/dev/net/tun", "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("the stack's tun device at /dev/net/tun: %w", err)
	}
	return nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}
