package e2e

import (
	"archive/tar"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"
)

// Build code in pull mode meets an allowlist, not a denylist: system
// calls the kernel allows any user but the default profile does not list
// (a personality flag, a syscall newer than the profile) are refused, on
// the native, the 32-bit (int 0x80) and the x32 entry points, in a real
// container made by the host's runtime. The probe runs on the host first,
// so a refusal inside is the filter's, not the kernel's.
func TestPullModeBuildCodeMeetsASeccompAllowlist(t *testing.T) {
	needFixture(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("the probe's system call numbers are amd64's")
	}
	probe := buildSysprobe(t)
	out, err := exec.Command(probe).CombinedOutput()
	if err != nil {
		t.Fatalf("sysprobe on the host: %v\n%s", err, out)
	}
	host := sysprobeResults(string(out))
	ref := sysprobeBuilder(t, probe)
	r := pullBuildEnv(t, filepath.Join(fx.Dir, "seccomp-cache-"+randSuffix()), nil, "--builder", ref,
		"--run-image", fx.RunImage, "--image", fx.Registry.Host+"/pull/seccomp:latest", "--env", "HOSTILE=syscalls")
	if r.code != 0 {
		t.Fatalf("build: exit %d\n%s", r.code, r.stderr)
	}
	inside := sysprobeResults(r.stderr + r.stdout)
	t.Logf("host %v\ninside %v", host, inside)
	for _, call := range []string{"64 personality", "64 file_getattr", "32 personality", "x32 personality",
		"64 keyctl", "32 keyctl", "64 io_uring_setup", "64 unshare", "32 unshare", "64 userfaultfd"} {
		got, ok := inside[call]
		if !ok {
			t.Errorf("%s: the probe did not get to it in the build (a filter that kills the thread?)", call)
			continue
		}
		if got != "EPERM" && got != "ENOSYS" {
			t.Errorf("%s reached the kernel in build code (%s; on the host: %s)", call, got, host[call])
		}
	}
	// Outside the filter these are the kernel's to allow: otherwise the
	// refusals above prove nothing.
	for _, call := range []string{"64 personality", "64 file_getattr", "32 personality"} {
		if host[call] == "EPERM" || host[call] == "ENOSYS" {
			t.Errorf("%s is refused on the host too (%s): the check above is moot", call, host[call])
		}
	}
	// The 32-bit entry point is filtered by its own table, as the native
	// one: what the profile lists works there.
	if host["32 getpid"] == "ok" && inside["32 getpid"] != "ok" {
		t.Errorf("32-bit getpid: %s in build code, want ok", inside["32 getpid"])
	}
	if t.Failed() {
		t.Logf("cipack's log:\n%s", r.stderr)
	}
}

var sysprobeLine = regexp.MustCompile(`(?m)sysprobe (\S+ \S+): (\S+)$`)

func sysprobeResults(out string) map[string]string {
	m := map[string]string{}
	for _, s := range sysprobeLine.FindAllStringSubmatch(out, -1) {
		m[s[1]] = s[2]
	}
	return m
}

func buildSysprobe(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "sysprobe")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/pullhostile/sysprobe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build sysprobe: %v\n%s", err, b)
	}
	return out
}

// sysprobeBuilder is the pullhostile builder plus /usr/bin/sysprobe.
func sysprobeBuilder(t *testing.T, probe string) string {
	t.Helper()
	w := &phWorld{}
	base := w.baseBuilder(t)
	b, err := os.ReadFile(probe)
	if err != nil {
		t.Fatal(err)
	}
	l, err := rawLayer(
		phEntry{hdr: tar.Header{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755}},
		phEntry{hdr: tar.Header{Name: "usr/bin/", Typeflag: tar.TypeDir, Mode: 0o755}},
		phEntry{hdr: tar.Header{Name: "usr/bin/sysprobe", Typeflag: tar.TypeReg, Mode: 0o755}, body: b},
	)
	if err != nil {
		t.Fatal(err)
	}
	ref, _, err := w.appendTo(base, "seccomp", l)
	if err != nil {
		t.Fatal(fmt.Errorf("push the sysprobe builder: %w", err))
	}
	return ref
}
