package acttest

import (
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cipack/cipack/internal/creator"
)

// releaseBins are the binaries a release ships per architecture, as
// BIN_linux_ARCH, and the action installs side by side as BIN: cipack
// and pull mode's trusted lifecycle.
var releaseBins = []string{"cipack", "lifecycle", "launcher"}

// setupRun runs a copy of the action's setup script (from the action tree
// tree) with exactly env, and returns its log and its step outputs.
func setupRun(t *testing.T, tree string, env ...string) (log, outputs string, err error) {
	t.Helper()
	tmp := t.TempDir()
	out := filepath.Join(tmp, "out")
	cmd := exec.Command(filepath.Join(tree, "action", "setup-cipack.sh"))
	cmd.Env = append([]string{"RUNNER_TEMP=" + tmp, "GITHUB_OUTPUT=" + out}, env...)
	b, err := cmd.CombinedOutput()
	o, _ := os.ReadFile(out)
	return string(b), string(o), err
}

// pathOutput is the binary the script wrote to path= in its outputs.
func pathOutput(t *testing.T, outputs string) string {
	t.Helper()
	for _, l := range strings.Split(outputs, "\n") {
		if p, ok := strings.CutPrefix(l, "path="); ok {
			return p
		}
	}
	t.Fatalf("no path= output in %q", outputs)
	return ""
}

// trustedNextTo fails unless cipack's own check (the one pull mode runs)
// accepts the lifecycle and launcher next to the cipack binary bin.
func trustedNextTo(t *testing.T, bin string) {
	t.Helper()
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := creator.FindTrusted(filepath.Dir(bin), creator.PinnedModule(bi))
	if err != nil {
		t.Fatalf("pull mode would refuse the lifecycle installed next to %s: %v", bin, err)
	}
	if tr.Version == "" {
		t.Fatalf("no lifecycle version for %s", bin)
	}
}

// staged is the cipack the script wrote to path=, after checking that it
// is in a directory the script made for this run (not the tool cache, not
// PATH) and that the release's binaries there are dist's.
func staged(t *testing.T, outputs, dist string) string {
	t.Helper()
	bin := pathOutput(t, outputs)
	if !strings.HasPrefix(filepath.Base(filepath.Dir(bin)), "cipack-release.") || filepath.Base(bin) != "cipack" {
		t.Fatalf("path=%s, want cipack in a cipack-release.* directory made for the run", bin)
	}
	for _, b := range releaseBins {
		if sha256File(t, filepath.Join(filepath.Dir(bin), b)) != sha256File(t, filepath.Join(dist, b+"_linux_"+runtime.GOARCH)) {
			t.Fatalf("%s next to path=%s is not the release's", b, bin)
		}
	}
	return bin
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// The action's release path: the assets — cipack and the trusted
// lifecycle and launcher — are downloaded and each checked against
// checksums.txt (served here from `make release` output for this host's
// architecture, on 127.0.0.1); a tampered or unlisted asset is refused,
// and the tool cache is used only when all three still match.
func TestSetupScriptVerifiesReleaseAssets(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Fatalf("release assets exist for amd64 and arm64, not %s", runtime.GOARCH)
	}
	rootDir, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	arch := runtime.GOARCH
	dist := t.TempDir()
	mk := exec.Command("make", "-s", "release", "VERSION=v9.9.9", "DIST="+dist, "RELEASE_ARCHES="+arch)
	mk.Dir = rootDir
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}
	sums, err := os.ReadFile(filepath.Join(dist, "checksums.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range releaseBins {
		if !strings.Contains(string(sums), "  "+b+"_linux_"+arch+"\n") {
			t.Fatalf("checksums.txt does not list %s_linux_%s:\n%s", b, arch, sums)
		}
	}

	// alter, when set, changes what the server sends for a file.
	var alter atomic.Pointer[func(file string, b []byte) []byte]
	var requests atomic.Int32
	// An http stand-in the https one can redirect to: the script must not follow.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("plain http\n"))
	}))
	defer plain.Close()
	var redirect atomic.Bool
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if redirect.Load() {
			http.Redirect(w, r, plain.URL+r.URL.Path, http.StatusFound)
			return
		}
		file, ok := strings.CutPrefix(r.URL.Path, "/v9.9.9/")
		if !ok || strings.Contains(file, "/") {
			http.NotFound(w, r)
			return
		}
		b, err := os.ReadFile(filepath.Join(dist, file))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		if f := alter.Load(); f != nil {
			b = (*f)(file, b)
		}
		_, _ = w.Write(b)
	}))
	defer srv.Close()
	setAlter := func(f func(file string, b []byte) []byte) {
		if f == nil {
			alter.Store(nil)
			return
		}
		alter.Store(&f)
	}

	// The action as a consumer gets it: its tree, with (at a major tag)
	// the release it stands for recorded in action/release-version.
	actionTree := func(recorded string) string {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "action"), 0o755); err != nil {
			t.Fatal(err)
		}
		script, err := os.ReadFile(filepath.Join(rootDir, "action", "setup-cipack.sh"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "action", "setup-cipack.sh"), script, 0o755); err != nil {
			t.Fatal(err)
		}
		if recorded != "" {
			if err := os.WriteFile(filepath.Join(dir, "action", "release-version"), []byte(recorded+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	// The stand-in release is served over https (127.0.0.1, the test
	// server's own certificate, trusted through curl's CA bundle variable).
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	toolCache := t.TempDir()
	firstCache := toolCache
	run := func(tree, version, path string) (string, string, error) {
		return setupRun(t, tree, "PATH="+path, "RUNNER_TOOL_CACHE="+toolCache, "CIPACK_VERSION="+version, "CIPACK_RELEASE_BASE="+srv.URL, "CURL_CA_BUNDLE="+caFile, "SSL_CERT_FILE="+caFile)
	}
	cacheDir := func() string { return filepath.Join(toolCache, "cipack", "v9.9.9", arch) }
	// A PATH without cipack and without go: only the release path is left.
	const noGo = "/usr/bin:/bin"

	// The action used at @v1: the release commit says v9.9.9.
	log, outputs, err := run(actionTree("v9.9.9"), "v1", noGo)
	if err != nil || !strings.Contains(log, "ref 'v1' is release v9.9.9") || !strings.Contains(log, "installed release v9.9.9 (verified)") ||
		!strings.Contains(log, "cipack: checked: checksums only: each binary against checksums.txt, downloaded over https from the release (no cosign on PATH to verify its signature)") {
		t.Fatalf("install at @v1: %v\n%s", err, log)
	}
	bin := staged(t, outputs, dist)
	if v, err := exec.Command(bin, "--version").CombinedOutput(); err != nil || !strings.Contains(string(v), "v9.9.9") {
		t.Fatalf("installed binary does not run as v9.9.9: %v %s", err, v)
	}
	for _, b := range releaseBins {
		p := filepath.Join(cacheDir(), b)
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o111 == 0 {
			t.Fatalf("%s is not kept executable in the tool cache: %v", p, err)
		}
		if got, want := sha256File(t, p), sha256File(t, filepath.Join(dist, b+"_linux_"+arch)); got != want {
			t.Fatalf("%s is not the release's %s_linux_%s", p, b, arch)
		}
		if !strings.Contains(log, filepath.Join(filepath.Dir(bin), b)) {
			t.Errorf("the log does not say it installed %s:\n%s", b, log)
		}
	}
	trustedNextTo(t, bin)
	if leftovers, _ := filepath.Glob(filepath.Join(cacheDir(), ".download-*")); len(leftovers) != 0 {
		t.Errorf("download dir left behind: %v", leftovers)
	}

	// A second job on the same runner takes all three from the tool cache,
	// checked against the release's checksums.txt fetched again (the one
	// request), not against a copy kept beside them.
	requests.Store(0)
	log, outputs, err = run(actionTree(""), "v9.9.9", noGo)
	if err != nil || !strings.Contains(log, "from the tool cache") || requests.Load() != 1 {
		t.Fatalf("tool cache: %v, %d requests\n%s", err, requests.Load(), log)
	}
	// What the step hands on is a copy, checked: a cached file swapped
	// after the check changes nothing the later steps run.
	hit := staged(t, outputs, dist)
	cached, err := os.ReadFile(filepath.Join(cacheDir(), "cipack"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cacheDir(), "cipack"), []byte("#!/bin/sh\necho swapped\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if sha256File(t, hit) != sha256File(t, filepath.Join(dist, "cipack_linux_"+arch)) {
		t.Fatal("a cipack swapped into the tool cache after the check is what the step runs")
	}
	if err := os.WriteFile(filepath.Join(cacheDir(), "cipack"), cached, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cacheDir(), "checksums.txt")); err == nil {
		t.Fatal("the tool cache keeps a checksums.txt a cache hit could be checked against")
	}
	// A tampered cached cipack, with a checksums.txt beside it that agrees
	// with it (what a script trusting its cache would accept): no hit, the
	// release's cipack is downloaded again.
	evil := []byte("#!/bin/sh\necho tampered\n")
	if err := os.WriteFile(filepath.Join(cacheDir(), "cipack"), evil, 0o755); err != nil {
		t.Fatal(err)
	}
	es := sha256.Sum256(evil)
	if err := os.WriteFile(filepath.Join(cacheDir(), "checksums.txt"), []byte(hex.EncodeToString(es[:])+"  cipack_linux_"+arch+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if log, _, err := run(actionTree(""), "v9.9.9", noGo); err != nil || strings.Contains(log, "from the tool cache") || !strings.Contains(log, "installed release v9.9.9 (verified)") {
		t.Fatalf("a tampered cached cipack: %v\n%s", err, log)
	}
	if sha256File(t, filepath.Join(cacheDir(), "cipack")) != sha256File(t, filepath.Join(dist, "cipack_linux_"+arch)) {
		t.Fatal("the tampered cached cipack was not replaced by the release's")
	}

	// https only, redirects included: a redirect to http is refused.
	redirect.Store(true)
	toolCache = t.TempDir()
	log, _, err = run(actionTree(""), "v9.9.9", noGo)
	redirect.Store(false)
	if ee, _ := err.(*exec.ExitError); ee == nil || !strings.Contains(log, "::error title=cipack setup::could not download "+srv.URL+"/v9.9.9/checksums.txt") || strings.Contains(log, "plain http") {
		t.Fatalf("an https to http redirect must be refused: %v\n%s", err, log)
	}
	// A plain http release base is refused outright.
	if log, _, err := setupRun(t, actionTree(""), "PATH="+noGo, "RUNNER_TOOL_CACHE="+t.TempDir(), "CIPACK_VERSION=v9.9.9", "CIPACK_RELEASE_BASE="+plain.URL); err == nil || !strings.Contains(log, "https only") {
		t.Fatalf("an http release base must be refused: %v\n%s", err, log)
	}

	// A pinned release wins over a cipack on PATH that is not its binary,
	// whatever it prints: it is never run (its marker file stays absent),
	// its copy is hashed. The genuine release binary on PATH is used, as a
	// copy: swapped on PATH after the check, the step still runs the
	// bytes that were checked.
	fakeDir := t.TempDir()
	marker := filepath.Join(t.TempDir(), "ran")
	fake := func(v string) {
		if err := os.WriteFile(filepath.Join(fakeDir, "cipack"), []byte("#!/bin/sh\ntouch '"+marker+"'\necho 'cipack version "+v+"'\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []string{"v0.0.1", "v9.9.9"} {
		fake(v)
		toolCache = t.TempDir()
		log, outputs, err := run(actionTree("v9.9.9"), "v1", fakeDir+":"+noGo)
		if err != nil || strings.Contains(log, "from PATH") ||
			!strings.Contains(log, "::warning title=cipack setup::"+filepath.Join(fakeDir, "cipack")+" on PATH is not release v9.9.9's cipack_linux_"+arch) ||
			!strings.Contains(log, "installed release v9.9.9 (verified") {
			t.Fatalf("a cipack on PATH printing %s must not be used: %v\n%s", v, err, log)
		}
		staged(t, outputs, dist)
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("the setup script ran the unverified cipack on PATH (printing %s)", v)
		}
	}
	genuineDir := t.TempDir()
	for _, b := range releaseBins {
		body, err := os.ReadFile(filepath.Join(dist, b+"_linux_"+arch))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(genuineDir, b), body, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	requests.Store(0)
	log, outputs, err = run(actionTree(""), "v9.9.9", genuineDir+":"+noGo)
	if err != nil || !strings.Contains(log, "using "+filepath.Join(genuineDir, "cipack")+" from PATH (release v9.9.9: its sha256 is the release's") || requests.Load() != 1 {
		t.Fatalf("the pinned release on PATH: %v, %d requests\n%s", err, requests.Load(), log)
	}
	copied := staged(t, outputs, dist)
	trustedNextTo(t, copied)
	fake("v9.9.9")
	if err := os.Rename(filepath.Join(fakeDir, "cipack"), filepath.Join(genuineDir, "cipack")); err != nil {
		t.Fatal(err)
	}
	if sha256File(t, copied) != sha256File(t, filepath.Join(dist, "cipack_linux_"+arch)) {
		t.Fatal("a cipack swapped onto PATH after the check is what the step runs")
	}

	// With cosign on PATH, checksums.txt's keyless signature is verified
	// (the bundle from the release, the release workflow's identity);
	// a signature that does not verify refuses the release.
	cosignDir := t.TempDir()
	argsFile := filepath.Join(cosignDir, "args")
	cosignStub := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + argsFile + "\n[ -f \"$3\" ] || exit 3\nexit ${COSIGN_EXIT:-0}\n"
	if err := os.WriteFile(filepath.Join(cosignDir, "cosign"), []byte(cosignStub), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dist, "checksums.txt.sigstore.json"), []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	toolCache = t.TempDir()
	log, _, err = run(actionTree(""), "v9.9.9", cosignDir+":"+noGo)
	args, _ := os.ReadFile(argsFile)
	want := "verify-blob\n--bundle\n" + filepath.Join(cacheDir()) + "/.download-"
	if err != nil || !strings.Contains(log, "checked: checksums.txt signed by the cipack release workflow (cosign verify-blob)") || !strings.HasPrefix(string(args), want) ||
		!strings.Contains(string(args), "/checksums.txt.sigstore.json\n--certificate-identity-regexp\n^https://github.com/cipack/cipack/.github/workflows/release.yml@refs/tags/v\n--certificate-oidc-issuer\nhttps://token.actions.githubusercontent.com\n") ||
		!strings.HasSuffix(string(args), "/checksums.txt\n") {
		t.Fatalf("cosign verify-blob: %v\nargs:\n%s\nlog:\n%s", err, args, log)
	}
	toolCache = t.TempDir()
	log, _, err = setupRun(t, actionTree(""), "PATH="+cosignDir+":"+noGo, "RUNNER_TOOL_CACHE="+toolCache, "CIPACK_VERSION=v9.9.9", "CIPACK_RELEASE_BASE="+srv.URL, "CURL_CA_BUNDLE="+caFile, "COSIGN_EXIT=1")
	if ee, _ := err.(*exec.ExitError); ee == nil || !strings.Contains(log, "::error title=cipack setup::the signature of checksums.txt for v9.9.9 does not verify") {
		t.Fatalf("a signature that does not verify must refuse the release: %v\n%s", err, log)
	}
	if _, err := os.Stat(filepath.Join(cacheDir(), "cipack")); err == nil {
		t.Fatal("a release whose signature does not verify was installed")
	}
	toolCache = t.TempDir()
	if err := os.Remove(filepath.Join(dist, "checksums.txt.sigstore.json")); err != nil {
		t.Fatal(err)
	}
	if log, _, err := run(actionTree(""), "v9.9.9", cosignDir+":"+noGo); err == nil || !strings.Contains(log, "could not download "+srv.URL+"/v9.9.9/checksums.txt.sigstore.json") {
		t.Fatalf("with cosign, a release without its signature bundle must be refused: %v\n%s", err, log)
	}
	toolCache = firstCache

	// The cache check covers every binary: one changed or missing in the
	// cache is no hit; the release is fetched and verified again.
	for _, b := range releaseBins {
		for _, how := range []string{"changed", "missing"} {
			p := filepath.Join(cacheDir(), b)
			if how == "changed" {
				f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = f.Write([]byte{0})
				f.Close()
			} else if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			requests.Store(0)
			log, _, err := run(actionTree(""), "v9.9.9", noGo)
			if err != nil || strings.Contains(log, "from the tool cache") || requests.Load() == 0 || !strings.Contains(log, "installed release v9.9.9 (verified)") {
				t.Fatalf("%s %s in the tool cache must not be a hit: %v, %d requests\n%s", how, b, err, requests.Load(), log)
			}
			if sha256File(t, p) != sha256File(t, filepath.Join(dist, b+"_linux_"+arch)) {
				t.Fatalf("%s was not replaced by the release's", p)
			}
		}
	}
	// A cache from before the lifecycle shipped (cipack and checksums.txt
	// only) is no hit either.
	for _, b := range []string{"lifecycle", "launcher"} {
		if err := os.Remove(filepath.Join(cacheDir(), b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(cacheDir(), "checksums.txt"), []byte(sha256File(t, bin)+"  cipack_linux_"+arch+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if log, _, err := run(actionTree(""), "v9.9.9", noGo); err != nil || strings.Contains(log, "from the tool cache") {
		t.Fatalf("a cache without the lifecycle: %v\n%s", err, log)
	}
	trustedNextTo(t, bin)

	// A tampered asset — the lifecycle as much as cipack — is refused with
	// an error annotation and exit 1, and nothing is installed.
	for _, b := range releaseBins {
		asset := b + "_linux_" + arch
		setAlter(func(file string, body []byte) []byte {
			if file == asset {
				return append(bytes.Clone(body), 0)
			}
			return body
		})
		toolCache = t.TempDir()
		log, outputs, err := run(actionTree(""), "v9.9.9", noGo)
		ee, _ := err.(*exec.ExitError)
		if ee == nil || ee.ExitCode() != 1 || !strings.Contains(log, "::error title=cipack setup::checksum mismatch for "+asset+" v9.9.9: refusing it") || outputs != "" {
			t.Fatalf("a tampered %s must be refused with exit 1: %v\n%s", asset, err, log)
		}
		if entries, _ := os.ReadDir(cacheDir()); len(entries) != 0 {
			t.Fatalf("a refused release left %v in the tool cache", entries)
		}
	}
	// checksums.txt without a line for the lifecycle: refused the same way.
	setAlter(func(file string, body []byte) []byte {
		if file != "checksums.txt" {
			return body
		}
		var keep []string
		for _, l := range strings.SplitAfter(string(body), "\n") {
			if !strings.HasSuffix(l, " lifecycle_linux_"+arch+"\n") {
				keep = append(keep, l)
			}
		}
		return []byte(strings.Join(keep, ""))
	})
	toolCache = t.TempDir()
	log, _, err = run(actionTree(""), "v9.9.9", noGo)
	if ee, _ := err.(*exec.ExitError); ee == nil || ee.ExitCode() != 1 || !strings.Contains(log, "::error title=cipack setup::checksum mismatch for lifecycle_linux_"+arch) {
		t.Fatalf("an unlisted lifecycle must be refused: %v\n%s", err, log)
	}
	// A lifecycle asset the release lacks: a download error naming it.
	setAlter(nil)
	if err := os.Rename(filepath.Join(dist, "launcher_linux_"+arch), filepath.Join(dist, "launcher.gone")); err != nil {
		t.Fatal(err)
	}
	toolCache = t.TempDir()
	log, _, err = run(actionTree(""), "v9.9.9", noGo)
	if err == nil || !strings.Contains(log, "::error title=cipack setup::could not download "+srv.URL+"/v9.9.9/launcher_linux_"+arch) {
		t.Fatalf("a missing launcher asset: %v\n%s", err, log)
	}
	if err := os.Rename(filepath.Join(dist, "launcher.gone"), filepath.Join(dist, "launcher_linux_"+arch)); err != nil {
		t.Fatal(err)
	}

	// wget where there is no curl; neither: a clear error naming the fix.
	only := func(tools ...string) string {
		dir := t.TempDir()
		for _, tool := range tools {
			p, err := exec.LookPath(tool)
			if err != nil {
				t.Fatalf("%s is needed for this test: %v", tool, err)
			}
			if err := os.Symlink(p, filepath.Join(dir, tool)); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	base := []string{"sh", "dirname", "expr", "tr", "uname", "mkdir", "mktemp", "cp", "grep", "sed", "sha256sum", "mv", "chmod", "rm", "cat"}
	withWget := only(base...)
	curl, _ := exec.LookPath("curl")
	// A wget that is curl underneath: the script's wget branch, its
	// arguments (-q -O FILE URL) and its verification are what is tested.
	stub := "#!/bin/sh\n[ \"$1\" = -q ] && [ \"$2\" = --https-only ] && [ \"$3\" = -O ] || exit 2\nexec " + curl + " -fsSL --proto =https -o \"$4\" \"$5\"\n"
	if err := os.WriteFile(filepath.Join(withWget, "wget"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	toolCache = t.TempDir()
	if log, outputs, err := run(actionTree("v9.9.9"), "v1", withWget); err != nil || !strings.Contains(log, "installed release v9.9.9 (verified)") {
		t.Fatalf("with wget only: %v\n%s", err, log)
	} else {
		trustedNextTo(t, pathOutput(t, outputs))
	}
	toolCache = t.TempDir()
	log, _, err = run(actionTree("v9.9.9"), "v1", only(base...))
	if err == nil || !strings.Contains(log, "neither curl nor wget") || !strings.Contains(log, "::error title=cipack setup::") {
		t.Fatalf("no downloader: %v\n%s", err, log)
	}
	// An untagged ref without Go: the error says how to get a release.
	log, _, err = run(actionTree(""), "main", noGo)
	if err == nil || !strings.Contains(log, "use the action at a release") {
		t.Fatalf("untagged ref, no Go: %v\n%s", err, log)
	}
}

// A cipack already on PATH (baked into a builder image) is used as it is;
// when no lifecycle and launcher are next to it (symlinks resolved, as
// cipack resolves its own executable) or in CIPACK_LIFECYCLE_DIR, a notice
// says what pull mode then needs, and the step still succeeds.
func TestSetupScriptCipackOnPath(t *testing.T) {
	rootDir, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	exe := func(path string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const notice = "::notice title=cipack setup::no lifecycle and launcher in "
	run := func(pathDir string, env ...string) (string, string) {
		t.Helper()
		log, outputs, err := setupRun(t, rootDir, append([]string{"PATH=" + pathDir + ":/usr/bin:/bin"}, env...)...)
		if err != nil {
			t.Fatalf("cipack on PATH must not fail the step: %v\n%s", err, log)
		}
		if !strings.Contains(log, "cipack: using "+filepath.Join(pathDir, "cipack")+" from PATH") || pathOutput(t, outputs) != filepath.Join(pathDir, "cipack") {
			t.Fatalf("cipack on PATH not used:\n%s\n%s", log, outputs)
		}
		return log, outputs
	}

	alone := t.TempDir()
	exe(filepath.Join(alone, "cipack"))
	if log, _ := run(alone); !strings.Contains(log, notice+alone) || !strings.Contains(log, "--lifecycle-dir") || !strings.Contains(log, "--trust-builder") {
		t.Fatalf("no notice for a cipack without its lifecycle:\n%s", log)
	}
	// Only one of the two is not enough.
	exe(filepath.Join(alone, "lifecycle"))
	if log, _ := run(alone); !strings.Contains(log, notice) {
		t.Fatalf("no notice for a cipack without a launcher:\n%s", log)
	}

	shipped := t.TempDir()
	for _, b := range releaseBins {
		exe(filepath.Join(shipped, "opt", b))
	}
	real := filepath.Join(shipped, "opt")
	if log, _ := run(real); strings.Contains(log, notice) || !strings.Contains(log, "pull mode's trusted lifecycle: "+filepath.Join(real, "lifecycle")) {
		t.Fatalf("lifecycle next to cipack:\n%s", log)
	}
	// /usr/local/bin/cipack -> /opt/cipack/cipack: cipack looks in /opt/cipack.
	linked := filepath.Join(shipped, "bin")
	if err := os.MkdirAll(linked, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(real, "cipack"), filepath.Join(linked, "cipack")); err != nil {
		t.Fatal(err)
	}
	if log, _ := run(linked); strings.Contains(log, notice) || !strings.Contains(log, "pull mode's trusted lifecycle: "+filepath.Join(real, "lifecycle")) {
		t.Fatalf("a symlinked cipack:\n%s", log)
	}
	// CIPACK_LIFECYCLE_DIR is where cipack looks instead.
	if log, _ := run(alone, "CIPACK_LIFECYCLE_DIR="+real); strings.Contains(log, notice) {
		t.Fatalf("CIPACK_LIFECYCLE_DIR with the lifecycle:\n%s", log)
	}
	if log, _ := run(real, "CIPACK_LIFECYCLE_DIR="+alone); !strings.Contains(log, notice+alone) {
		t.Fatalf("CIPACK_LIFECYCLE_DIR without the lifecycle:\n%s", log)
	}
}

// An untagged ref where Go is present: cipack, the lifecycle and the
// launcher are built from the action's own source, side by side, and
// cipack's check accepts that lifecycle.
func TestSetupScriptBuildsFromSource(t *testing.T) {
	rootDir, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(rootDir, "action", "release-version")); err == nil {
		t.Skip("this tree records a release: the script would download it")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + filepath.Dir(goBin) + ":/usr/bin:/bin", "CIPACK_VERSION=main", "HOME=" + os.Getenv("HOME")}
	env = append(env, goEnv...)
	if v, err := exec.Command("go", "env", "GOFLAGS").Output(); err == nil {
		env = append(env, "GOFLAGS="+strings.TrimSpace(string(v)))
	}
	log, outputs, err := setupRun(t, rootDir, env...)
	if err != nil || !strings.Contains(log, "cipack: building from "+rootDir) {
		t.Fatalf("build from source: %v\n%s", err, log)
	}
	bin := pathOutput(t, outputs)
	for _, b := range releaseBins {
		if !strings.Contains(log, filepath.Join(filepath.Dir(bin), b)) {
			t.Errorf("the log does not name %s:\n%s", b, log)
		}
	}
	trustedNextTo(t, bin)
}
