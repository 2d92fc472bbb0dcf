package e2e

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/sandbox"
	"github.com/cipack/cipack/internal/testenv"
)

// Build code's network in pull mode (issue 33, item 5), seen by a spy
// buildpack (testdata/pullnetwork/netprobe) that tries what a hostile
// buildpack tried on a runner: a secret served on the host's 127.0.0.1,
// the loopback registry's catalog, a secret on an abstract unix socket of
// the host, and the cloud metadata endpoint. In its own network it
// reaches none of them, yet it reaches an HTTP proxy on a non-loopback
// address and resolves names through the runner's resolver, while the
// credential phases still push to the loopback registry. --network host
// is today's behaviour (and says so), --network none a loopback only.
//
// The proxy and the resolver live in a network namespace the test makes,
// joined to the host by a veth pair on 198.18.N.0/30 (RFC 2544's
// benchmarking range): no test traffic leaves this machine. cipack runs
// in a private mount namespace whose /etc/resolv.conf names that
// resolver, as a runner's names its own.
func TestPullModeBuildCodeHasANetworkOfItsOwn(t *testing.T) {
	needFixture(t)
	if _, err := exec.LookPath("pasta"); err != nil {
		t.Fatal("pasta is not installed: apt-get install passt (make setup installs it)")
	}
	w := startNetWorld(t)
	t.Run("isolated_by_default", func(t *testing.T) {
		r := w.build(t, "isolated", true)
		r.mustPush(t)
		for _, probe := range []string{"tcp", "registry", "abstract"} {
			r.blocked(t, probe)
		}
		if !regexp.MustCompile(`netspy: metadata blocked=true after \d{1,3}ms`).MatchString(r.stderr + r.stdout) {
			t.Errorf("the metadata endpoint was not refused at once: %q", lineWith(r.stderr+r.stdout, "netspy: metadata"))
		}
		r.reached(t, "proxy", "netspy-proxy-ok GET http://netspy.invalid/probe")
		r.reached(t, "dns", "203.0.113.7")
		r.unroutable(t, "hostaddr")
		if got, want := r.nameservers(), []string{sandbox.DNSForwarder, sandbox.DNSForwarder6}; !slices.Equal(got, want) {
			t.Errorf("build code's resolvers: %q, want pasta's forwarders only, %q", got, want)
		}
	})
	t.Run("slirp4netns_when_pasta_is_missing", func(t *testing.T) {
		if _, err := exec.LookPath("slirp4netns"); err != nil {
			t.Fatal("slirp4netns is not installed: apt-get install slirp4netns (make setup installs it)")
		}
		r := w.buildWithout(t, "slirp", []string{"pasta"}, true)
		r.mustPush(t)
		for _, probe := range []string{"tcp", "registry", "abstract"} {
			r.blocked(t, probe)
		}
		r.unroutable(t, "metadata")
		r.unroutable(t, "hostaddr")
		r.reached(t, "proxy", "netspy-proxy-ok GET http://netspy.invalid/probe")
		r.reached(t, "dns", "203.0.113.7")
		if got := lineWith(r.stderr+r.stdout, "netspy: interfaces"); got != "netspy: interfaces lo tap0" {
			t.Errorf("want slirp4netns's tap0: %q", got)
		}
	})
	t.Run("no_stack_is_the_hosts_network_with_a_warning", func(t *testing.T) {
		r := w.buildWithout(t, "nostack", []string{"pasta", "slirp4netns"}, false)
		r.mustPush(t)
		r.reached(t, "tcp", w.secret)
		if n := strings.Count(r.stderr, "apt-get install passt"); n != 1 {
			t.Errorf("want one warning naming apt-get install passt, got %d:\n%s", n, r.stderr)
		}
	})
	t.Run("host_is_todays_network_and_says_so", func(t *testing.T) {
		r := w.build(t, "host", false, "--network", "host")
		r.mustPush(t)
		r.reached(t, "tcp", w.secret)
		r.reached(t, "abstract", w.secret)
		if !strings.Contains(r.stderr, "--network host: build code shares the runner's network") {
			t.Errorf("--network host is not said in the log:\n%s", r.stderr)
		}
	})
	t.Run("none_is_a_loopback_only", func(t *testing.T) {
		r := w.build(t, "none", true, "--network", "none")
		r.mustPush(t)
		for _, probe := range []string{"tcp", "registry", "abstract", "proxy", "dns"} {
			r.blocked(t, probe)
		}
		if got := lineWith(r.stderr+r.stdout, "netspy: interfaces"); got != "netspy: interfaces lo" {
			t.Errorf("--network none: %q, want only lo", got)
		}
	})
	t.Run("pasta_dies_with_a_killed_build", w.killedBuild)
	t.Run("the_runner_and_metadata_by_any_interface", w.runnerByAnyInterface)
	t.Run("a_bad_value_is_a_usage_error", func(t *testing.T) {
		r := w.build(t, "bad", false, "--network", "bridge")
		if r.code != exit.Usage || !strings.Contains(r.stderr, "--network") {
			t.Errorf("--network bridge: want exit %d naming --network, got %d:\n%s", exit.Usage, r.code, r.stderr)
		}
	})
}

// netWorld is the test's servers: a secret on 127.0.0.1 and on an
// abstract unix socket, and a proxy and a resolver in a netns of its own.
type netWorld struct {
	secret, tcp, abstract string
	proxy, resolv         string
	buildpack             string
	// hostAddr is the host's end of the veth: one of the runner's own
	// addresses, where nothing listens. empty is bound over hidden
	// programs.
	hostAddr, empty string
}

func startNetWorld(t *testing.T) *netWorld {
	w := &netWorld{secret: "netspy-secret-" + randSuffix()}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	abs, err := net.Listen("unix", "@cipack-netspy-"+randSuffix())
	if err != nil {
		t.Fatal(err)
	}
	for _, ln := range []net.Listener{tcp, abs} {
		t.Cleanup(func() { ln.Close() })
		go serveSecret(ln, w.secret)
	}
	w.tcp, w.abstract = tcp.Addr().String(), strings.TrimPrefix(abs.Addr().String(), "@")
	ip, hostIP := testNetns(t)
	w.hostAddr = hostIP
	w.empty = filepath.Join(fx.Dir, "netspy-empty-"+randSuffix())
	if err := os.WriteFile(w.empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	proxy := listenIn(t, ip, func(ns string) (any, error) { return net.Listen("tcp", ns+":0") }).(net.Listener)
	go func() { _ = http.Serve(proxy, http.HandlerFunc(answerProxy)) }()
	dns := listenIn(t, ip, func(ns string) (any, error) { return net.ListenPacket("udp", ns+":53") }).(net.PacketConn)
	go serveDNS(dns, net.ParseIP("203.0.113.7"))
	w.proxy = "http://" + proxy.Addr().String()
	w.resolv = filepath.Join(fx.Dir, "netspy-resolv-"+randSuffix()+".conf")
	if err := os.WriteFile(w.resolv, []byte("nameserver "+ip+"\noptions timeout:1 attempts:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.buildpack = netspyBuildpack(t)
	return w
}

func serveSecret(ln net.Listener, secret string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = c.Write([]byte(secret + "\n"))
		c.Close()
	}
}

// answerProxy is the proxy: it answers every request itself (it forwards
// nothing), naming what it was asked for.
func answerProxy(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "netspy-proxy-ok %s %s\n", r.Method, r.URL)
}

// testNetns makes a network namespace joined to the host by a veth pair
// and returns its address and the host's; the test removes both.
func testNetns(t *testing.T) (string, string) {
	n := os.Getpid()%250 + 1
	name, host, peer := fmt.Sprintf("cipack-nt-%d", os.Getpid()), fmt.Sprintf("cnt%dh", os.Getpid()), fmt.Sprintf("cnt%dn", os.Getpid())
	hostIP, nsIP := fmt.Sprintf("198.18.%d.1", n), fmt.Sprintf("198.18.%d.2", n)
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", host).Run()
		_ = exec.Command("ip", "netns", "del", name).Run()
	})
	for _, args := range [][]string{
		{"netns", "add", name},
		{"link", "add", host, "type", "veth", "peer", "name", peer, "netns", name},
		{"addr", "add", hostIP + "/30", "dev", host},
		{"link", "set", host, "up"},
		{"-n", name, "addr", "add", nsIP + "/30", "dev", peer},
		{"-n", name, "link", "set", peer, "up"},
		{"-n", name, "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nsIP, hostIP
}

// hidden are the paths at which PATH finds names.
func hidden(t *testing.T, names []string) []string {
	var out []string
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			continue // not there: hidden already
		}
		if p, err = filepath.EvalSymlinks(p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// listenIn runs listen on a thread that joined the test's netns. The
// socket stays in that namespace; the thread is never unlocked, so it
// ends with its goroutine and no other code runs in the namespace.
func listenIn(t *testing.T, ip string, listen func(string) (any, error)) any {
	v, err := inNamespace(fmt.Sprintf("/run/netns/cipack-nt-%d", os.Getpid()), func() (any, error) { return listen(ip) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.(interface{ Close() error }).Close() })
	return v
}

// serveDNS answers A queries with answer and others with no record.
func serveDNS(pc net.PacketConn, answer net.IP) {
	buf := make([]byte, 512)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		end := 12
		for end < n && buf[end] != 0 {
			end += int(buf[end]) + 1
		}
		end += 5 // the name's zero byte, QTYPE, QCLASS
		if end > n {
			continue
		}
		resp := append([]byte{}, buf[:end]...) // header and question; EDNS dropped
		resp[2], resp[3] = 0x81, 0x80
		copy(resp[6:12], make([]byte, 6))
		if binary.BigEndian.Uint16(buf[end-4:]) == 1 {
			resp[7] = 1
			resp = append(resp, 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
			resp = append(resp, answer.To4()...)
		}
		_, _ = pc.WriteTo(resp, addr)
	}
}

// netspyBuildpack is a buildpack directory whose detect and build are
// the netprobe binary.
func netspyBuildpack(t *testing.T) string {
	dir := filepath.Join(fx.Dir, "netspy-bp-"+randSuffix())
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "bin", "build"), "./testdata/pullnetwork/netprobe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build netprobe: %v\n%s", err, out)
	}
	if err := os.Link(filepath.Join(dir, "bin", "build"), filepath.Join(dir, "bin", "detect")); err != nil {
		t.Fatal(err)
	}
	toml := "api = \"0.10\"\n[buildpack]\nid = \"cipack-test/netspy\"\nversion = \"0.0.1\"\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n"
	if err := os.WriteFile(filepath.Join(dir, "buildpack.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// netRun is one spy build.
type netRun struct {
	run
	image string
}

// build runs the spy build in pull mode, in a private mount namespace
// whose /etc/resolv.conf names the test's resolver. metadata: also try
// 169.254.169.254 (never on the host's network: it could leave the
// machine).
func (w *netWorld) build(t *testing.T, name string, metadata bool, args ...string) netRun {
	return w.buildWithout(t, name, nil, metadata, args...)
}

// buildWithout is build with the programs hide named not on PATH in
// cipack's mount namespace (an empty, non-executable file bound over
// each).
func (w *netWorld) buildWithout(t *testing.T, name string, hide []string, metadata bool, args ...string) netRun {
	return w.buildAt(t, w.home(), name, hide, metadata, args...)
}

// buildAt is buildWithout at place.
func (w *netWorld) buildAt(t *testing.T, at place, name string, hide []string, metadata bool, args ...string) netRun {
	cmd, image := w.commandAt(t, at, name, metadata, args...)
	cmd.Env = append(cmd.Env, "NETSPY_HIDE="+strings.Join(hidden(t, hide), " "))
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	began := time.Now()
	_ = cmd.Run()
	r := netRun{run{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}, image}
	t.Logf("%s build: exit %d in %s; the spy saw:\n%s", name, r.code, time.Since(began).Round(time.Millisecond), grepLines(r.stderr+r.stdout, "netspy: |cipack: (warning|--network)"))
	return r
}

// place is where a spy build runs: cipack's network namespace ("" for
// the test's own), the resolv.conf it sees, its proxy and spy settings.
type place struct {
	netns, resolv, proxy string
	env                  []string // --env values for the spy
}

// home is the test's own network: the proxy and the resolver in the
// test's netns, the host's address, the 127.0.0.1 and abstract secrets.
func (w *netWorld) home() place {
	return place{resolv: w.resolv, proxy: w.proxy, env: []string{"NETSPY_TCP=" + w.tcp, "NETSPY_REGISTRY=" + fx.Registry.Host,
		"NETSPY_ABSTRACT=" + w.abstract, "NETSPY_PROXY=1", "NETSPY_DNS=registry.netspy.test", "NETSPY_HOSTADDR=" + w.hostAddr + ":9"}}
}

// command is the spy build's command and image, at home.
func (w *netWorld) command(t *testing.T, name string, metadata bool, args ...string) (*exec.Cmd, string) {
	return w.commandAt(t, w.home(), name, metadata, args...)
}

// commandAt is command at place: with a netns, cipack runs there
// (nsenter), as on a runner whose network that is.
func (w *netWorld) commandAt(t *testing.T, at place, name string, metadata bool, args ...string) (*exec.Cmd, string) {
	ws := filepath.Join(fx.Dir, "netspy-ws-"+randSuffix())
	root, _ := testenv.ModuleRoot()
	if err := copyDir(filepath.Join(root, "examples", "app"), ws); err != nil {
		t.Fatal(err)
	}
	image := fx.Registry.Host + "/pull/netspy-" + name + ":latest"
	meta := "0"
	if metadata {
		meta = "1"
	}
	script := `mount --bind "$0" /etc/resolv.conf || exit 1
for f in $NETSPY_HIDE; do mount --bind "$NETSPY_EMPTY" "$f" || exit 1; done
exec "$@"`
	argv := []string{"unshare", "-m", "--propagation", "private", "sh", "-c", script, at.resolv,
		fx.Cipack, "build", "--path", ws, "--source-root", ws, "--cnb-dir", filepath.Join(fx.Dir, "no-cnb"),
		"--builder-cache", filepath.Join(fx.Dir, "netspy-store"), "--builder", fx.BuilderImage, "--image", image,
		"--buildpack", w.buildpack, "--env", "NETSPY_METADATA=" + meta}
	for _, e := range at.env {
		argv = append(argv, "--env", e)
	}
	if at.netns != "" {
		argv = append([]string{"nsenter", "--net=" + at.netns, "--"}, argv...)
	}
	cmd := exec.Command(argv[0], append(argv[1:], args...)...)
	cmd.Env = append(os.Environ(), "HTTP_PROXY="+at.proxy, "NO_PROXY=127.0.0.1,localhost", "NETSPY_EMPTY="+w.empty)
	return cmd, image
}

// killedBuild SIGKILLs cipack while the spy's build phase sleeps in its
// own network, and wants the phase's pasta gone with it: the helper's
// PID namespace takes it down, whatever ends cipack.
func (w *netWorld) killedBuild(t *testing.T) {
	tmp := filepath.Join(fx.Dir, "netspy-tmp-"+randSuffix())
	if err := os.Mkdir(tmp, 0o777); err != nil {
		t.Fatal(err)
	}
	cmd, _ := w.command(t, "killed", false, "--env", "NETSPY_SLEEP=1")
	cmd.Env = append(cmd.Env, "TMPDIR="+tmp)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); pr.Close() }()
	sleeping := make(chan bool, 1)
	go func() {
		s := bufio.NewScanner(pr)
		for s.Scan() {
			if strings.Contains(s.Text(), "netspy: sleeping") {
				sleeping <- true
			}
		}
		close(sleeping)
	}()
	select {
	case ok := <-sleeping:
		if !ok {
			t.Fatal("the build ended before the spy slept")
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the spy did not sleep within 2 minutes")
	}
	stacks := pastaOf(tmp)
	if len(stacks) == 0 {
		t.Fatalf("no pasta runs for the sleeping build phase (TMPDIR %s): its network is not its own", tmp)
	}
	for _, pid := range stacks {
		unprivilegedPasta(t, pid)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && len(pastaOf(tmp)) > 0; {
		time.Sleep(50 * time.Millisecond)
	}
	if left := pastaOf(tmp); len(left) > 0 {
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		t.Errorf("pasta (pids %v) outlived the killed build", left)
	}
}

// unprivilegedPasta wants pasta at pid to be sandbox.StackUID on the
// host, in a user namespace of its own: its capabilities are that
// namespace's, none of the host's (issue 33, review: it ran as root with
// the host's CAP_SYS_ADMIN).
func unprivilegedPasta(t *testing.T, pid int) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	uid := fmt.Sprint(sandbox.StackUID)
	if want := "Uid:\t" + strings.Repeat(uid+"\t", 3) + uid + "\n"; !strings.Contains(string(status), want) {
		t.Errorf("pasta %d: %q, want every uid %s", pid, grepLines(string(status), "^Uid:"), uid)
	}
	own, _ := os.Readlink("/proc/self/ns/user")
	if its, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pid)); its == own || its == "" {
		t.Errorf("pasta %d is in the host's user namespace (%s): its capabilities are the host's", pid, its)
	}
}

// pastaOf lists the pasta processes of builds whose TMPDIR is tmp: their
// parent, the sandbox helper that reaps them, has its work tmpfs there
// (pasta gets its namespaces as open files, not paths).
func pastaOf(tmp string) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.HasPrefix(filepath.Base(strings.SplitN(string(b), "\x00", 2)[0]), "pasta") {
			continue
		}
		status, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "status"))
		ppid := regexp.MustCompile(`(?m)^PPid:\s+(\d+)`).FindSubmatch(status)
		if ppid == nil {
			continue
		}
		if mounts, _ := os.ReadFile("/proc/" + string(ppid[1]) + "/mountinfo"); !strings.Contains(string(mounts), tmp) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (r netRun) mustPush(t *testing.T) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("the build did not push (exit %d):\n%s", r.code, r.stderr)
	}
	if got := tags(t, strings.TrimSuffix(r.image, ":latest")); len(got) == 0 {
		t.Errorf("exit 0 but %s has no tag", r.image)
	}
}

func (r netRun) blocked(t *testing.T, probe string) {
	t.Helper()
	if l := r.line(probe); !strings.HasPrefix(l, "netspy: "+probe+" blocked") {
		t.Errorf("build code reached %s: %q", probe, l)
	}
}

// unroutable wants probe refused by a route in build code's namespace
// (the packet never left it), not by whatever answered beyond.
func (r netRun) unroutable(t *testing.T, probe string) {
	t.Helper()
	if l := r.line(probe); !strings.Contains(l, "no route to host") {
		t.Errorf("%s: want no route to host inside build code's namespace, got %q", probe, l)
	}
}

func (r netRun) reached(t *testing.T, probe, want string) {
	t.Helper()
	if l := r.line(probe); !strings.HasPrefix(l, "netspy: "+probe+" reached") || !strings.Contains(l, want) {
		t.Errorf("build code did not reach %s (want %q): %q", probe, want, l)
	}
}

// nameservers are the nameservers build code's resolv.conf names.
func (r netRun) nameservers() []string {
	var out []string
	for _, m := range regexp.MustCompile(`netspy: resolv.conf nameserver (\S+)`).FindAllStringSubmatch(r.stderr+r.stdout, -1) {
		out = append(out, m[1])
	}
	return out
}

// line is the spy's line for probe.
func (r netRun) line(probe string) string {
	s := bufio.NewScanner(strings.NewReader(r.stderr + r.stdout))
	for s.Scan() {
		l := s.Text()
		if i := strings.Index(l, "netspy: "+probe+" "); i >= 0 {
			return l[i:]
		}
	}
	return "(no line: the spy did not run)"
}
