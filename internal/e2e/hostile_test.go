package e2e

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/testenv"
)

// The security tests of issue "hostile builds, fleets and networks": each
// reproduces an attack or a fault and checks what cipack promises (README,
// "Security and reliability").

var hostileOnce struct {
	sync.Once
	dir string
	err error
}

// hostileBuilder is the test builder plus a buildpack that attacks the
// platform (internal/e2e/testdata/hostile), chosen by the build env
// HOSTILE.
func hostileBuilder(t *testing.T) string {
	t.Helper()
	hostileOnce.Do(func() {
		bps, err := testenv.ExampleBuildpacks()
		if err != nil {
			hostileOnce.err = err
			return
		}
		abs, err := filepath.Abs(filepath.Join("testdata", "hostile"))
		if err != nil {
			hostileOnce.err = err
			return
		}
		bps = append(bps, testenv.Buildpack{ID: "cipack-test/hostile", Version: "0.0.1", Dir: abs})
		hostileOnce.dir, hostileOnce.err = testenv.MakeBuilder(filepath.Join(fx.Dir, "hostile-cnb"), testenv.BuilderSpec{
			LifecycleDir: fx.LifecycleDir, RunImage: fx.RunImage, Buildpacks: bps,
		})
	})
	if hostileOnce.err != nil {
		t.Fatal(hostileOnce.err)
	}
	return hostileOnce.dir
}

func hostileWorkspace(t *testing.T, name string) testenv.Mounts {
	m := workspace(t, name)
	m.CNB = hostileBuilder(t)
	return m
}

// Build code reads every /proc/*/environ and cmdline, the platform dir and
// cipack's temp files: no registry password, CNB_REGISTRY_AUTH, GitHub
// token or webhook token is there to read when cipack runs as root.
func TestBuildCodeCannotReachSecrets(t *testing.T) {
	needFixture(t)
	auth, err := testenv.StartProxy(fx.Registry.Host, testenv.ProxyOptions{User: "ci", Password: "registry-s3cret-pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer auth.Close()
	secrets := map[string]string{
		"registry password":        "registry-s3cret-pw",
		"registry auth header":     base64.StdEncoding.EncodeToString([]byte("ci:registry-s3cret-pw")),
		"CNB_REGISTRY_AUTH token":  "cnb-auth-s3cret",
		"GitHub token":             "ghs_github-s3cret",
		"webhook token":            "webhook-s3cret",
		"act's copy of the inputs": "input-s3cret",
	}
	env := []string{
		"CIPACK_REGISTRY_USERNAME=ci", "CIPACK_REGISTRY_PASSWORD=registry-s3cret-pw",
		`CNB_REGISTRY_AUTH={"other.example": "Bearer cnb-auth-s3cret"}`,
		"CIPACK_GITHUB_TOKEN=ghs_github-s3cret", "CIPACK_TRIGGER_TOKEN=webhook-s3cret", "INPUT_REGISTRY-PASSWORD=input-s3cret",
	}
	r := cipackBuildIn(t, hostileWorkspace(t, "spy"), env, "--image", auth.Host+"/hostile/spy:latest", "--env", "HOSTILE=spy")
	if r.code != 0 {
		t.Fatalf("spy build: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "hostile: spy read ") || !strings.Contains(r.stderr, fmt.Sprintf("proc files as %d", fx.UID)) {
		t.Fatalf("the spy did not run as the build user:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "spy-read") {
		t.Fatalf("the spy read nothing at all (not even its own environ): it did not look\n%s", r.stderr)
	}
	for what, s := range secrets {
		if strings.Contains(r.stderr, s) || strings.Contains(r.stdout, s) {
			t.Errorf("build code read the %s", what)
		}
	}
}

// A buildpack that replaces report.toml with a FIFO neither hangs the build
// nor forges its digest: cipack refuses the report (exit 9) and outputs
// nothing.
func TestForgedReportIsRefused(t *testing.T) {
	needFixture(t)
	r := cipackBuildIn(t, hostileWorkspace(t, "fifo"), nil, "--image", fx.Registry.Host+"/hostile/fifo:latest", "--env", "HOSTILE=fifo")
	if r.code != exit.Export || !strings.Contains(r.stderr, "not a regular file") {
		t.Fatalf("exit %d, want %d with the report refused\n%s", r.code, exit.Export, r.stderr)
	}
	if r.stdout != "" {
		t.Fatalf("a refused build printed a result: %q", r.stdout)
	}
}

// --path cannot leave the workspace: not by "..", nor by a symlink, and
// handing the app to the build user never reaches a file outside it.
func TestAppPathIsConfined(t *testing.T) {
	needFixture(t)
	decoy := filepath.Join(fx.Dir, "decoy-"+randSuffix())
	if err := os.MkdirAll(decoy, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(decoy, "shadow")
	if err := os.WriteFile(secret, []byte("decoy-root-only-content"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := workspace(t, "confine")
	if err := os.Symlink(decoy, filepath.Join(m.Workspace, "escape")); err != nil {
		t.Fatal(err)
	}
	repo := fx.Registry.Host + "/confine/app"
	for _, path := range []string{"/workspace/.." + decoy, "/workspace/escape"} {
		r := cipackBuildIn(t, m, nil, "--image", repo+":latest", "--path", path)
		if r.code != exit.Usage || !strings.Contains(r.stderr, "outside the source root") {
			t.Errorf("--path %s: exit %d, want %d\n%s", path, r.code, exit.Usage, r.stderr)
		}
	}
	if got := tags(t, repo); len(got) != 0 {
		t.Fatalf("a refused build pushed %v", got)
	}
	assertRootOwned(t, decoy, secret)

	// A symlink to the app builds the app (the lifecycle gets the real
	// directory), and a hard link to a root-only file is left out of the
	// build's copy: it keeps its owner and its content does not reach the
	// image.
	src := filepath.Join(m.Workspace, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(m.Workspace, "app.sh"), filepath.Join(src, "app.sh")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("src", filepath.Join(m.Workspace, "current")); err != nil {
		t.Fatal(err)
	}
	r := cipackBuildIn(t, m, nil, "--image", repo+":linked", "--path", "/workspace/current")
	if r.code != 0 {
		t.Fatalf("build through a symlink to the app: exit %d\n%s", r.code, r.stderr)
	}
	// The app behind the symlink is what the image holds, bound at
	// /workspace (in-builder mode as root puts it there).
	if files := imageFiles(t, repo+":linked"); !strings.Contains(files, "workspace/app.sh") || strings.Contains(files, "workspace/current") {
		t.Errorf("the image lacks the app behind the symlink:\n%s", files)
	}
	if wd := testenv.MustConfig(t, repo+":linked").Config.WorkingDir; wd != "/workspace" {
		t.Errorf("WORKDIR %q, want /workspace", wd)
	}
	if err := os.Link(secret, filepath.Join(src, "hardlink")); err != nil {
		t.Fatal(err)
	}
	r = cipackBuildIn(t, m, nil, "--image", repo+":hardlink", "--path", "/workspace/current")
	assertRootOwned(t, secret)
	if r.code != 0 || !strings.Contains(r.stderr, "hard-linked file(s) left out of the build") {
		t.Fatalf("a hard link to a root-only file: exit %d, want 0 with the link left out of the build's copy\n%s", r.code, r.stderr)
	}
	if files := imageFiles(t, repo+":hardlink"); strings.Contains(files, "hardlink") {
		t.Fatalf("the hard-linked file reached the image:\n%s", files)
	}
}

func assertRootOwned(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s now belongs to %d:%d: cipack changed a file outside the app", p, st.Uid, st.Gid)
		}
	}
}

// imageFiles lists the image's files, with the content of small ones, as
// one string to search.
func imageFiles(t *testing.T, ref string) string {
	t.Helper()
	rc := mutate.Extract(testenv.MustPull(t, ref))
	defer rc.Close()
	var b strings.Builder
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(h.Name + "\n")
		if h.Size < 4096 {
			body, _ := io.ReadAll(tr)
			b.Write(body)
			b.WriteString("\n")
		}
	}
	return b.String()
}

// blackhole accepts TCP connections on 127.0.0.1 and never answers.
func blackhole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// A registry that accepts connections and never answers fails a build and
// a sweep within the deadline, with exit 4 naming it.
func TestBlackholedRegistryIsBounded(t *testing.T) {
	needFixture(t)
	host := blackhole(t)
	env := []string{"CIPACK_REGISTRY_TIMEOUT=2s"}
	start := time.Now()
	r := cipackBuild(t, "blackhole", env, "--image", host+"/app:latest")
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("build against a blackhole took %s with a 2s deadline", took)
	}
	if r.code != exit.RegistryUnreachable || !strings.Contains(r.stderr, host) || !strings.Contains(r.stderr, "did not answer") {
		t.Fatalf("build: exit %d, want %d naming %s\n%s", r.code, exit.RegistryUnreachable, host, r.stderr)
	}
	start = time.Now()
	rep, code, stderr := cipackRebase(t, "images:\n  - image: "+host+"/app:latest\n", env)
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("sweep against a blackhole took %s with a 2s deadline", took)
	}
	if v, _, _, e, _ := rep.byImage(t, host+"/app:latest"); code != exit.SomeFailed || v != "error" || !strings.Contains(e, "did not answer") {
		t.Fatalf("sweep: exit %d, %s %q\n%s", code, v, e, stderr)
	}
}

// A sweep killed between two tag moves leaves the tags apart; the next
// sweep (and its dry run) sees that and moves them back together.
func TestKilledSweepConvergesOnTheNextRun(t *testing.T) {
	needFixture(t)
	w := newRebaseWorld(t, "converge")
	fleet := "images:\n  - image: " + w.appA + "\n    tags: [" + w.appAStable + "]\n"
	old := testenv.MustHead(t, w.appA)
	pushRun(t, w.run, "v2", testenv.StackID)
	if _, code, stderr := cipackRebase(t, fleet, nil); code != 0 {
		t.Fatalf("rebase: exit %d\n%s", code, stderr)
	}
	moved := testenv.MustHead(t, w.appA)
	// What a SIGKILL between the two moves leaves: latest on the new base,
	// stable on the old one.
	oldImg, err := remote.Image(mustRef(t, w.appA+"@"+old.String()))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Tag(mustTagRef(t, w.appAStable), oldImg); err != nil {
		t.Fatal(err)
	}
	r, code, _ := cipackRebase(t, fleet, nil, "--dry-run", "--exit-code")
	if v, reason, _, _, _ := r.byImage(t, w.appA); code != exit.ChangesPending || v != "rebase" || reason != "TAGS_DIVERGED" {
		t.Fatalf("dry run: exit %d, %s %s; want %d rebase TAGS_DIVERGED", code, v, reason, exit.ChangesPending)
	}
	if r, code, stderr := cipackRebase(t, fleet, nil); code != 0 || r.Counts["rebase"] != 1 {
		t.Fatalf("converging sweep: exit %d %v\n%s", code, r.Counts, stderr)
	}
	if a, s := testenv.MustHead(t, w.appA), testenv.MustHead(t, w.appAStable); a != moved || s != moved {
		t.Fatalf("after the converging sweep latest=%s stable=%s, want both %s", a, s, moved)
	}
	if r, code, _ := cipackRebase(t, fleet, nil); code != 0 || r.Counts["up-to-date"] != 1 {
		t.Fatalf("the sweep after: exit %d %v, want up-to-date", code, r.Counts)
	}
}

// An app build pushed while the sweep runs is not overwritten by the
// rebased older image: the image fails "moved since inspection" and none of
// its tags move.
func TestRebaseDoesNotOverwriteANewerPush(t *testing.T) {
	needFixture(t)
	var once sync.Once
	var newer string
	proxy, err := testenv.StartProxy(fx.Registry.Host, testenv.ProxyOptions{Fault: func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/newer/a/manifests/sha256:") {
			once.Do(func() {
				// The app's own pipeline pushes a new build right now.
				img, _ := random.Image(128, 1)
				d, err := testenv.Push(context.Background(), fx.Registry.Host+"/newer/a:latest", img)
				if err == nil {
					newer = d.String()
				}
			})
		}
		return false
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	h := proxy.Host
	run, app, stable := h+"/newer/run:latest", h+"/newer/a:latest", h+"/newer/a:stable"
	pushRun(t, run, "v1", testenv.StackID)
	if r := cipackBuild(t, "newer", nil, "--image", app, "--tag", "stable", "--run-image", run); r.code != 0 {
		t.Fatalf("build: %d\n%s", r.code, r.stderr)
	}
	before := testenv.MustHead(t, stable)
	pushRun(t, run, "v2", testenv.StackID)
	r, code, stderr := cipackRebase(t, "images:\n  - image: "+app+"\n    tags: ["+stable+"]\n", nil)
	if newer == "" {
		t.Fatalf("the concurrent push did not happen\n%s", stderr)
	}
	if v, _, _, e, _ := r.byImage(t, app); code != exit.SomeFailed || v != "error" || !strings.Contains(e, "moved since inspection") {
		t.Fatalf("exit %d, %s %q; want a moved-since-inspection error", code, v, e)
	}
	if got := testenv.MustHead(t, app).String(); got != newer {
		t.Fatalf("latest is %s, not the newer push %s: the rebase overwrote it", got, newer)
	}
	if got := testenv.MustHead(t, stable); got != before {
		t.Fatalf("stable moved although the image failed")
	}
}

// Two builds to the same tags: when another build's write lands on a tag
// after this build's, this build fails (exit 9) naming the tag, instead
// of reporting a digest the tag does not hold.
func TestBuildDetectsTagsMovedByAnotherBuild(t *testing.T) {
	needFixture(t)
	other, _ := random.Image(128, 1)
	proxy, err := testenv.StartProxy(fx.Registry.Host, testenv.ProxyOptions{Fault: func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPut || !strings.HasSuffix(r.URL.Path, "/conc/app/manifests/v1") {
			return false
		}
		// The other build's v1 lands; this build's write is answered as
		// if it had (it lands first and is overwritten at once).
		body, _ := io.ReadAll(r.Body)
		if _, err := testenv.Push(context.Background(), fx.Registry.Host+"/conc/app:v1", other); err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			return true
		}
		sum := sha256.Sum256(body)
		w.Header().Set("Docker-Content-Digest", "sha256:"+hex.EncodeToString(sum[:]))
		w.WriteHeader(http.StatusCreated)
		return true
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	r := cipackBuild(t, "conc", nil, "--image", proxy.Host+"/conc/app:latest", "--tag", "v1")
	if r.code != exit.Export || !strings.Contains(r.stderr, "conc/app:v1 is at") {
		t.Fatalf("exit %d, want %d naming conc/app:v1\n%s", r.code, exit.Export, r.stderr)
	}
	if r.stdout != "" {
		t.Fatalf("a build whose tags diverged printed a result: %q", r.stdout)
	}
}

// SIGTERM while cipack moves the tags (after export and its checks):
// cipack exits 130 and says which tags were written and which were not.
func TestInterruptedBuildSaysWhichTagsMoved(t *testing.T) {
	needFixture(t)
	var proc struct {
		sync.Mutex
		p *os.Process
	}
	proxy, err := testenv.StartProxy(fx.Registry.Host, testenv.ProxyOptions{Fault: func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPut || !strings.HasSuffix(r.URL.Path, "/intr/app/manifests/v1") {
			return false
		}
		proc.Lock()
		if proc.p != nil {
			_ = proc.p.Signal(syscall.SIGTERM)
		}
		proc.Unlock()
		select { // the write never completes
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
		return true
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := fx.CipackBuild(ctx, workspace(t, "intr"), "--image", proxy.Host+"/intr/app:latest", "--tag", "v1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	proc.Lock()
	proc.p = cmd.Process
	proc.Unlock()
	_ = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exit.Canceled {
		t.Fatalf("exit %d, want %d\n%s", code, exit.Canceled, stderr.String())
	}
	want := "not written: " + proxy.Host + "/intr/app:v1"
	if !strings.Contains(stderr.String(), "the build stopped after writing "+proxy.Host+"/intr/app:latest") || !strings.Contains(stderr.String(), want) {
		t.Fatalf("the log should say latest was written and v1 not:\n%s", stderr.String())
	}
}

// An unwritable --report-file is found before the sweep pushes anything.
func TestUnwritableReportFileFailsBeforeAnyPush(t *testing.T) {
	needFixture(t)
	w := newRebaseWorld(t, "reportfile")
	pushRun(t, w.run, "v2", testenv.StackID)
	before := testenv.MustHead(t, w.appA)
	fleet := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(fleet, []byte("images:\n  - image: "+w.appA+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fx.Cipack, "rebase", "--config", fleet, "--report-file", filepath.Join(t.TempDir(), "no", "such", "dir", "r.json"))
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != exit.Usage || !strings.Contains(string(out), "--report-file") {
		t.Fatalf("exit %d, want %d naming --report-file\n%s", code, exit.Usage, out)
	}
	if testenv.MustHead(t, w.appA) != before {
		t.Fatal("the image was rebased although the report could not be written")
	}
}

// A registry's error text cannot inject workflow commands into a GitHub
// log, nor outputs.
func TestRegistryTextCannotSteerGitHubLogs(t *testing.T) {
	needFixture(t)
	proxy, err := testenv.StartProxy(fx.Registry.Host, testenv.ProxyOptions{Fault: func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"errors":[{"code":"DENIED","message":"denied\n::set-output name=digest::sha256:evil\n::error::pwned\n  ::add-mask::x"}]}`))
		return true
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	out := filepath.Join(t.TempDir(), "github-output")
	if err := os.WriteFile(out, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := cipackBuild(t, "steer", []string{"GITHUB_ACTIONS=true", "GITHUB_OUTPUT=" + out}, "--image", proxy.Host+"/steer/app:latest")
	if r.code != exit.RegistryAuth {
		t.Fatalf("exit %d, want %d\n%s", r.code, exit.RegistryAuth, r.stderr)
	}
	if !strings.Contains(r.stderr, "set-output name=digest") {
		t.Fatalf("the registry's text should still be shown (defused):\n%s", r.stderr)
	}
	sc := bufio.NewScanner(strings.NewReader(strings.ReplaceAll(r.stderr, "\r", "\n")))
	for sc.Scan() {
		line := strings.TrimLeft(sc.Text(), " \t")
		if !strings.HasPrefix(line, "::") {
			continue
		}
		if !strings.HasPrefix(line, "::error title=") && !strings.HasPrefix(line, "::add-mask::") &&
			!strings.HasPrefix(line, "::group::") && !strings.HasPrefix(line, "::endgroup::") {
			t.Errorf("a workflow command from the registry reached the log: %q", line)
		}
	}
	if b, _ := os.ReadFile(out); len(b) != 0 {
		t.Errorf("outputs were written: %q", b)
	}
}

// Build env values (often secrets) sit in a 0700 dir of 0600 files owned
// by the build user; after a SIGKILL the next run removes them.
func TestKilledBuildLeavesNoReadableEnv(t *testing.T) {
	needFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := fx.CipackBuild(ctx, hostileWorkspace(t, "kill"), "--image", fx.Registry.Host+"/kill/app:latest",
		"--env", "HOSTILE=sleep", "--env", "NPM_TOKEN=npm-s3cret")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "hostile: ready") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the build never reached the buildpack")
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), fmt.Sprintf("cipack-platform-%d-*", cmd.Process.Pid)))
	if len(dirs) != 1 {
		t.Fatalf("platform dirs of pid %d: %v", cmd.Process.Pid, dirs)
	}
	dir := dirs[0]
	for p, mode := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "env"): 0o700, filepath.Join(dir, "env", "NPM_TOKEN"): 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != mode || int(st.Uid) != fx.UID {
			t.Errorf("%s: mode %v owner %d, want %v owned by the build user %d", p, fi.Mode().Perm(), st.Uid, mode, fx.UID)
		}
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Wait()
	pw.Close()
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the killed build's dir should still be there for this test: %v", err)
	}
	if r := cipackBuild(t, "after-kill", nil, "--image", fx.Registry.Host+"/kill/app:latest"); r.code != 0 {
		t.Fatalf("the next build: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the next run left the killed build's env dir %s in place (%v)", dir, err)
	}
}

func mustRef(t testing.TB, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustTagRef(t testing.TB, s string) name.Tag {
	t.Helper()
	r, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// As the build user (not root) cipack cannot keep the lifecycle's
// credentials from buildpacks: it says so once, and says how to run as
// root. Its own environment (the registry password) stays unreadable: the
// process is not dumpable.
func TestNonRootBuildWarnsAndHidesCipacksOwnEnv(t *testing.T) {
	needFixture(t)
	auth, err := testenv.StartProxy(fx.Registry.Host, testenv.ProxyOptions{User: "ci", Password: "nonroot-s3cret-pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer auth.Close()
	m := hostileWorkspace(t, "nonroot")
	for _, dir := range []string{m.Workspace, m.Layers} {
		if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, fx.UID, fx.GID)
		}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	id := func(n int) string { return fmt.Sprint(n) }
	cmd := testenv.InBuilder(ctx, m, "setpriv", "--reuid", id(fx.UID), "--regid", id(fx.GID), "--clear-groups",
		fx.Cipack, "build", "--path", "/workspace", "--source-root", "/workspace",
		"--image", auth.Host+"/hostile/nonroot:latest", "--env", "HOSTILE=spy")
	cmd.Env = append(os.Environ(), "CNB_USER_ID="+id(fx.UID), "CNB_GROUP_ID="+id(fx.GID), "HOME=/tmp",
		"CIPACK_REGISTRY_USERNAME=ci", "CIPACK_REGISTRY_PASSWORD=nonroot-s3cret-pw")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("non-root build: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "not root, so the lifecycle cannot drop privileges"); n != 1 {
		t.Errorf("the non-root warning appeared %d times, want once:\n%s", n, out)
	}
	if !strings.Contains(string(out), "securityContext.runAsUser: 0") {
		t.Errorf("the warning should say how to run as root:\n%s", out)
	}
	if !strings.Contains(string(out), fmt.Sprintf("proc files as %d", fx.UID)) {
		t.Fatalf("the spy did not run:\n%s", out)
	}
	if strings.Contains(string(out), "spy-read") && strings.Contains(string(out), "nonroot-s3cret-pw") {
		t.Errorf("build code read cipack's own registry password")
	}
}
