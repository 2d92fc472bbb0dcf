package sandbox

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The boundary, read off the config the runtime gets: no capability for
// build code, no_new_privs, private namespaces, nosuid/nodev everywhere,
// masked kernel paths, no device allowed, and the user's env winning.
func TestConfigIsADefaultContainerOrStricter(t *testing.T) {
	spec := Spec{
		Argv:  []string{"/cnb/lifecycle/builder"},
		Env:   []string{"PATH=/builder", "CNB_RUN_IMAGE=builder-chose", "PATH=/user", "HTTPS_PROXY=http://proxy"},
		UID:   1000,
		GID:   1001,
		Binds: []Bind{{Host: "/tmp/app", Path: "/workspace"}, {Host: "/tmp/platform", Path: "/platform/", ReadOnly: true}},
	}
	c := Config(spec, "/root", "cipack")
	p := c.Process
	if !p.NoNewPrivileges || p.User.UID != 1000 || p.User.GID != 1001 {
		t.Fatalf("process: nnp %v user %+v", p.NoNewPrivileges, p.User)
	}
	for name, set := range map[string][]string{"bounding": p.Capabilities.Bounding, "effective": p.Capabilities.Effective,
		"permitted": p.Capabilities.Permitted, "inheritable": p.Capabilities.Inheritable, "ambient": p.Capabilities.Ambient} {
		if len(set) != 0 {
			t.Errorf("build code holds %s capabilities %v", name, set)
		}
	}
	if want := []string{"CNB_RUN_IMAGE=builder-chose", "PATH=/user", "HTTPS_PROXY=http://proxy"}; !slices.Equal(p.Env, want) {
		t.Errorf("env %v, want %v (later values win)", p.Env, want)
	}
	var ns []specs.LinuxNamespaceType
	for _, n := range c.Linux.Namespaces {
		ns = append(ns, n.Type)
	}
	for _, want := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.MountNamespace, specs.IPCNamespace, specs.UTSNamespace} {
		if !slices.Contains(ns, want) {
			t.Errorf("no %s namespace in %v", want, ns)
		}
	}
	for _, m := range c.Mounts {
		if !slices.Contains(m.Options, "nosuid") {
			t.Errorf("mount %s lacks nosuid: %v", m.Destination, m.Options)
		}
		if m.Type == "bind" && !slices.Contains(m.Options, "nodev") {
			t.Errorf("bind %s lacks nodev: %v", m.Destination, m.Options)
		}
		if m.Destination == "/platform" && !slices.Contains(m.Options, "ro") {
			t.Errorf("read-only bind %s is writable: %v", m.Destination, m.Options)
		}
		if m.Destination == "/sys" && !slices.Contains(m.Options, "ro") {
			t.Errorf("/sys is writable")
		}
	}
	for _, want := range []string{"/proc/kcore", "/proc/keys", "/sys/firmware"} {
		if !slices.Contains(c.Linux.MaskedPaths, want) {
			t.Errorf("%s is not masked", want)
		}
	}
	checkAllowlist(t, c.Linux.Seccomp)
}

// checkAllowlist: the filter refuses what it does not list (EPERM), lists
// none of cipack's denials, allows clone only without namespace flags,
// and covers the 32-bit and x32 entry points on amd64.
func checkAllowlist(t *testing.T, sc *specs.LinuxSeccomp) {
	t.Helper()
	if sc == nil || sc.DefaultAction != specs.ActErrno || sc.DefaultErrnoRet == nil || *sc.DefaultErrnoRet != uint(syscall.EPERM) {
		t.Fatalf("seccomp is not an allowlist refusing with EPERM: %+v", sc)
	}
	allowed := map[string]bool{}
	for _, r := range sc.Syscalls {
		for _, n := range r.Names {
			if r.Action != specs.ActAllow {
				continue
			}
			allowed[n] = true
			if n == "clone" && (len(r.Args) != 1 || r.Args[0].Op != specs.OpMaskedEqual || r.Args[0].Value&syscall.CLONE_NEWUSER == 0 || r.Args[0].ValueTwo != 0) {
				t.Errorf("clone is allowed with namespace flags: %+v", r.Args)
			}
		}
	}
	for _, n := range []string{"mount", "umount2", "fsopen", "unshare", "setns", "clone3", "ptrace", "process_vm_readv", "bpf", "perf_event_open",
		"keyctl", "add_key", "request_key", "io_uring_setup", "userfaultfd", "kexec_load", "init_module", "finit_module", "pivot_root", "chroot"} {
		if allowed[n] {
			t.Errorf("seccomp allows %s", n)
		}
	}
	for _, n := range []string{"read", "execve", "clone", "socket", "openat", "futex", "setresuid"} {
		if !allowed[n] {
			t.Errorf("seccomp refuses %s, which builds need", n)
		}
	}
	var families []string
	for _, r := range sc.Syscalls {
		if slices.Equal(r.Names, []string{"socket"}) {
			families = append(families, fmt.Sprintf("%s %d", r.Args[0].Op, r.Args[0].Value))
		}
	}
	if want := []string{"SCMP_CMP_LT 3", "SCMP_CMP_EQ 10", "SCMP_CMP_EQ 16"}; !slices.Equal(families, want) {
		t.Errorf("socket families allowed: %v, want %v (AF_UNIX, AF_INET, AF_INET6, AF_NETLINK)", families, want)
	}
	if runtime.GOARCH == "amd64" && !slices.Equal(sc.Architectures, []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}) {
		t.Errorf("architectures %v: the 32-bit and x32 entry points are not filtered as the native one", sc.Architectures)
	}
}

func TestTrustedPhasesKeepOnlyWhatTheyNeed(t *testing.T) {
	c := Config(Spec{Argv: []string{"/cnb/lifecycle/exporter"}, Caps: TrustedCaps}, "/root", "cipack")
	if c.Process.User.UID != 0 || !slices.Equal(c.Process.Capabilities.Bounding, TrustedCaps) || !c.Process.NoNewPrivileges {
		t.Fatalf("trusted phase: user %+v caps %v nnp %v", c.Process.User, c.Process.Capabilities.Bounding, c.Process.NoNewPrivileges)
	}
	for _, bad := range []string{"CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_PTRACE", "CAP_MKNOD", "CAP_SYS_MODULE"} {
		if slices.Contains(TrustedCaps, bad) {
			t.Errorf("trusted phases hold %s", bad)
		}
	}
	checkAllowlist(t, c.Linux.Seccomp)
}

func TestFindRuntimePrefersRuncAndNamesWhatIsMissing(t *testing.T) {
	look := func(have ...string) func(string) (string, error) {
		return func(n string) (string, error) {
			if slices.Contains(have, n) {
				return "/usr/bin/" + n, nil
			}
			return "", errors.New("not found")
		}
	}
	for _, c := range []struct {
		have     []string
		override string
		want     string
		err      string
	}{
		{have: []string{"runc", "crun"}, want: "/usr/bin/runc"},
		{have: []string{"crun"}, want: "/usr/bin/crun"},
		{have: []string{"runc", "crun"}, override: "crun", want: "/usr/bin/crun"},
		{have: nil, err: "no OCI runtime (crun or runc) on PATH"},
		{have: []string{"crun"}, override: "youki", err: `OCI runtime "youki" not found`},
	} {
		got, err := FindRuntime(look(c.have...), c.override)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("have %v override %q: err %v, want %q", c.have, c.override, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("have %v override %q: %q %v, want %q", c.have, c.override, got, err, c.want)
		}
	}
}

// The mount plan: the kernel filesystems of a default container and a
// private /tmp first, then each bind in the order given, at its cleaned
// path, always nosuid and nodev, read-only only where asked.
func TestMountPlan(t *testing.T) {
	binds := []Bind{{Host: "/h/app", Path: "/workspace/"}, {Host: "/h/platform", Path: "/platform", ReadOnly: true}, {Host: "/h/x", Path: "/a/../cnb//buildpacks"}}
	m := mounts(binds)
	var kernel []string
	for _, x := range m[:len(m)-len(binds)] {
		kernel = append(kernel, x.Destination)
	}
	if want := []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/tmp"}; !slices.Equal(kernel, want) {
		t.Fatalf("kernel mounts %v, want %v", kernel, want)
	}
	for i, b := range m[len(m)-len(binds):] {
		want := []string{"rbind", "nosuid", "nodev"}
		if binds[i].ReadOnly {
			want = append(want, "ro")
		}
		if b.Type != "bind" || b.Source != binds[i].Host || !slices.Equal(b.Options, want) {
			t.Errorf("bind %d: %+v, want source %s options %v", i, b, binds[i].Host, want)
		}
	}
	if got := []string{m[7].Destination, m[8].Destination, m[9].Destination}; !slices.Equal(got, []string{"/workspace", "/platform", "/cnb/buildpacks"}) {
		t.Fatalf("bind paths %v, want them cleaned", got)
	}
	for _, x := range m {
		if x.Destination != "/dev" && !slices.Contains(x.Options, "nodev") && x.Type != "devpts" {
			t.Errorf("%s lacks nodev", x.Destination)
		}
	}
}
