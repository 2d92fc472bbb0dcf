package sandbox

import (
	"runtime"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// deniedSyscalls are refused (EPERM) inside the containers. Not the
// allowlist of Docker's default profile, which must track every new
// syscall a buildpack's toolchain may use; a denylist of what a build
// never needs and what breaks out or reaches the kernel: namespaces and
// mounts, kernel modules and keyrings, tracing and BPF, clocks and
// reboot, and io_uring (a large kernel surface Docker's profile shuts
// too). The capability set already forbids most of these; the filter
// is the second lock, as in a default container.
var deniedSyscalls = []string{
	"acct", "add_key", "bpf", "io_uring_enter", "io_uring_register", "io_uring_setup", "clock_adjtime", "clock_settime", "delete_module", "finit_module",
	"fsconfig", "fsmount", "fsopen", "fspick", "init_module", "iopl", "ioperm", "kexec_file_load",
	"kexec_load", "keyctl", "lookup_dcookie", "mount", "mount_setattr", "move_mount", "name_to_handle_at",
	"nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open", "pivot_root", "process_vm_readv",
	"process_vm_writev", "ptrace", "quotactl", "reboot", "request_key", "setns", "settimeofday",
	"swapoff", "swapon", "syslog", "umount2", "unshare", "userfaultfd", "vhangup",
}

// seccompProfile allows everything but deniedSyscalls, and clone calls
// that ask for a new namespace (one rule per flag: a filter can test
// "flag set" but not "any of these set"). clone3 passes its flags in
// memory a filter cannot read, so it answers ENOSYS, as Docker's profile
// does: libc then falls back to clone.
func seccompProfile() *specs.LinuxSeccomp {
	arch := specs.ArchX86_64
	if runtime.GOARCH == "arm64" {
		arch = specs.ArchAARCH64
	}
	rules := []specs.LinuxSyscall{
		{Names: deniedSyscalls, Action: specs.ActErrno, ErrnoRet: errnoRet(syscall.EPERM)},
		{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: errnoRet(syscall.ENOSYS)},
	}
	for _, f := range []uint64{syscall.CLONE_NEWNS, syscall.CLONE_NEWUTS, syscall.CLONE_NEWIPC, syscall.CLONE_NEWUSER,
		syscall.CLONE_NEWPID, syscall.CLONE_NEWNET, syscall.CLONE_NEWCGROUP} {
		rules = append(rules, specs.LinuxSyscall{Names: []string{"clone"}, Action: specs.ActErrno, ErrnoRet: errnoRet(syscall.EPERM),
			Args: []specs.LinuxSeccompArg{{Index: cloneFlagsArg, Value: f, ValueTwo: f, Op: specs.OpMaskedEqual}}})
	}
	return &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{arch}, Syscalls: rules}
}

func errnoRet(e syscall.Errno) *uint {
	v := uint(e)
	return &v
}

// cloneFlagsArg is the index of clone's flags argument (the first on
// amd64 and arm64 alike).
const cloneFlagsArg = 0
