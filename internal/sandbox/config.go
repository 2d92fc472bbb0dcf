package sandbox

import (
	"path"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TrustedCaps are what the lifecycle's credential phases (analyze,
// restore, export) need as root: own the layers and cache for the build
// user, then drop to that user. Build code gets none.
var TrustedCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETUID", "CAP_SETGID"}

// ociVersion is the config's version: the oldest that has every field
// used here, since runtimes refuse versions newer than their own (crun
// 1.8 refuses 1.3.0, the Go types' own).
const ociVersion = "1.0.2"

// maskedPaths and readonlyPaths are the defaults of `runc spec`: kernel
// interfaces a container has no business reading or writing.
var (
	maskedPaths = []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"}
	readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// Config is the runtime-spec config of spec's container with root as its
// root filesystem. It is pure, so tests check the boundary without root.
//
// The network namespace is the host's on purpose: the lifecycle talks to
// the registry the user named, loopback ones included, and buildpacks
// download what they need. It is wider than pack's default (a bridge
// network, which cannot reach the host's loopback): build code can reach
// services on the runner's 127.0.0.1. Everything else is private.
func Config(spec Spec, root, hostname string) *specs.Spec {
	caps := slices.Clone(spec.Caps)
	if caps == nil {
		caps = []string{}
	}
	dir := spec.Dir
	if dir == "" {
		dir = "/"
	}
	return &specs.Spec{
		Version:  ociVersion,
		Hostname: hostname,
		Root:     &specs.Root{Path: root},
		Process: &specs.Process{
			Args: spec.Argv,
			Env:  dedupeEnv(spec.Env),
			Cwd:  dir,
			User: specs.User{UID: spec.UID, GID: spec.GID, AdditionalGids: []uint32{spec.GID}},
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			NoNewPrivileges: true,
		},
		Mounts: mounts(spec.Binds),
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
			// No cgroup resources: crun runs without a cgroup of its own
			// (hosts in cgroup hybrid mode refuse one), so the device
			// boundary is the /dev the runtime makes (null, zero, random,
			// …, no disk), nodev on every other mount, and no CAP_MKNOD.
			MaskedPaths:   maskedPaths,
			ReadonlyPaths: readonlyPaths,
			Seccomp:       seccompProfile(caps),
		},
	}
}

// mounts are the kernel filesystems of a default container, a private
// /tmp, then the binds: each one nosuid and nodev, so nothing bound in
// can carry a setuid binary or a device into the build.
func mounts(binds []Bind) []specs.Mount {
	m := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
	}
	for _, b := range binds {
		opts := []string{"rbind", "nosuid", "nodev"}
		if b.ReadOnly {
			opts = append(opts, "ro")
		}
		m = append(m, specs.Mount{Destination: path.Clean(b.Path), Type: "bind", Source: b.Host, Options: opts})
	}
	return m
}

// dedupeEnv keeps the last value of each variable, as exec does: the
// caller lists the builder's env first and what the user asked for
// after, so the user's choice wins.
func dedupeEnv(env []string) []string {
	last := map[string]int{}
	for i, e := range env {
		last[key(e)] = i
	}
	out := make([]string, 0, len(last))
	for i, e := range env {
		if last[key(e)] == i {
			out = append(out, e)
		}
	}
	return out
}

func key(e string) string {
	for i := 0; i < len(e); i++ {
		if e[i] == '=' {
			return e[:i]
		}
	}
	return e
}
