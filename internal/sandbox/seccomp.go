package sandbox

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The containers' seccomp filter is an allowlist: the default profile
// Docker and containerd apply (github.com/moby/profiles/seccomp, pinned
// in go.mod), which refuses (EPERM) every syscall it does not list, so a
// syscall a newer kernel adds never reaches build code unfiltered. Its
// conditions are applied as containerd applies them: rules for
// capabilities the process holds (build code: none) and for the host's
// architecture, which on amd64 covers its 32-bit (x86, int 0x80) and x32
// entry points too, each filtered by its own syscall table.
//
// deniedSyscalls are cipack's own refusals on top, for every phase: what
// a build never needs and what reaches the kernel or other processes
// (mounts, namespaces, keyrings, io_uring, tracing, BPF, module loading,
// kexec, clocks, swap, reboot). Most need a capability no phase holds;
// the filter is the second lock. The default profile lists some of them
// for every process (ptrace and process_vm_* on kernels from 4.8,
// name_to_handle_at, clock_adjtime): they are taken out of its rules.
// clone with a namespace flag is refused by the profile's own clone rule
// for a process without CAP_SYS_ADMIN, and clone3 (its flags are in
// memory a filter cannot read) answers ENOSYS, so libc falls back to
// clone.
var deniedSyscalls = []string{
	// mounts and roots
	"mount", "umount", "umount2", "mount_setattr", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick",
	"pivot_root", "chroot", "name_to_handle_at", "open_by_handle_at",
	// namespaces
	"unshare", "setns",
	// keyrings
	"add_key", "keyctl", "request_key",
	// io_uring
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	// tracing, other processes' memory, BPF, perf, userfaultfd
	"ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "kcmp", "bpf", "perf_event_open", "userfaultfd",
	"lookup_dcookie", "fanotify_init",
	// the kernel itself: modules, kexec, reboot, swap, accounting, log
	"init_module", "finit_module", "delete_module", "create_module", "kexec_load", "kexec_file_load", "reboot",
	"swapon", "swapoff", "acct", "syslog", "quotactl", "quotactl_fd", "nfsservctl", "vhangup",
	// clocks and raw I/O
	"settimeofday", "clock_settime", "clock_settime64", "clock_adjtime", "clock_adjtime64", "stime", "iopl", "ioperm",
}

// socketDomains are the socket families the profile's socket rules keep:
// what builds and the lifecycle use (local sockets, IPv4, IPv6, netlink
// for interface and address lookups). The profile allows some thirty
// more for compatibility (vsock, AF_ALG, CAN, Bluetooth, TIPC, RDS …):
// kernel surface a build does not need, and each rule costs the runtime
// time to compile for all three amd64 entry points on every phase.
// This holds for socket(2) only: on the 32-bit entry point socketcall(2)
// reaches every family (its arguments are in memory, which a filter
// cannot read), and refusing it breaks 32-bit programs' networking
// (glibc and Go use it there; Docker reverted such a rule for that).
var socketDomains = []uint64{unix.AF_UNIX, unix.AF_INET, unix.AF_INET6, unix.AF_NETLINK}

// profiles keeps the converted profile of each capability set (Config
// runs once per phase).
var profiles sync.Map // caps key → *specs.LinuxSeccomp

// seccompProfile is the runtime-spec seccomp config of a process holding
// caps: the moby default profile with its conditions applied for caps and
// this architecture, minus deniedSyscalls.
func seccompProfile(caps []string) *specs.LinuxSeccomp {
	key := strings.Join(caps, ",")
	p, ok := profiles.Load(key)
	if !ok {
		p, _ = profiles.LoadOrStore(key, convertProfile(caps))
	}
	c := *p.(*specs.LinuxSeccomp) // a copy: the caller may edit its config
	c.Syscalls = slices.Clone(c.Syscalls)
	return &c
}

// convertProfile applies the profile's conditions through moby's own
// converter (LoadProfile, the one Docker uses; it needs only the
// capability set of the spec). The one kernel-version condition (ptrace
// and process_vm_* from 4.8) is dropped first: cipack denies those
// syscalls anyway, and Config stays a pure function of its inputs.
func convertProfile(caps []string) *specs.LinuxSeccomp {
	prof := seccomp.DefaultProfile()
	for _, s := range prof.Syscalls {
		if s.Includes != nil {
			s.Includes.MinKernel = nil
		}
		if s.Excludes != nil {
			s.Excludes.MinKernel = nil
		}
	}
	raw, err := json.Marshal(prof)
	var out *specs.LinuxSeccomp
	if err == nil {
		rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: slices.Clone(caps)}}}
		out, err = seccomp.LoadProfile(string(raw), rs)
	}
	if err != nil || out == nil {
		// Cannot happen with the pinned profile; fail closed: a filter
		// that allows nothing, so the runtime cannot start the phase.
		eperm := uint(unix.EPERM)
		return &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: &eperm}
	}
	out.Syscalls = withoutDenied(out.Syscalls)
	return out
}

// withoutDenied drops deniedSyscalls from the rules that allow, any rule
// left without a name, and the socket rules for other families than
// socketDomains.
func withoutDenied(rules []specs.LinuxSyscall) []specs.LinuxSyscall {
	out := rules[:0]
	for _, r := range rules {
		if r.Action == specs.ActAllow {
			r.Names = slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool { return slices.Contains(deniedSyscalls, n) })
		}
		if len(r.Names) > 0 && !otherSocketDomain(r) {
			out = append(out, r)
		}
	}
	return out
}

// otherSocketDomain is whether r allows socket(2) for one family only,
// not one of socketDomains. The profile's rule for the range below
// AF_INET+1 (AF_UNIX and AF_INET) stays.
func otherSocketDomain(r specs.LinuxSyscall) bool {
	if !slices.Equal(r.Names, []string{"socket"}) || len(r.Args) != 1 || r.Args[0].Index != 0 || r.Args[0].Op != specs.OpEqualTo {
		return false
	}
	return !slices.Contains(socketDomains, r.Args[0].Value)
}
