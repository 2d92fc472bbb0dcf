package acttest

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The action's release path: the asset is downloaded and checked against
// checksums.txt (served here from `make release` output on 127.0.0.1);
// a tampered asset is refused.
func TestSetupScriptVerifiesReleaseAssets(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Fatalf("release assets exist for amd64 and arm64, not %s", runtime.GOARCH)
	}
	rootDir, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	dist := t.TempDir()
	asset := "cipack_linux_" + runtime.GOARCH
	build := exec.Command("go", "build", "-o", filepath.Join(dist, asset), "./cmd/cipack")
	build.Dir = rootDir
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	sum := exec.Command("sh", "-c", "sha256sum "+asset+" > checksums.txt")
	sum.Dir = dist
	if out, err := sum.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	tamper := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v9.9.9/") {
			http.NotFound(w, r)
			return
		}
		b, err := os.ReadFile(filepath.Join(dist, strings.TrimPrefix(r.URL.Path, "/v9.9.9/")))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		if tamper && strings.HasSuffix(r.URL.Path, asset) {
			b = append(b, 0)
		}
		_, _ = w.Write(b)
	}))
	defer srv.Close()

	var requests int
	counted := srv.Config.Handler
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { requests++; counted.ServeHTTP(w, r) })

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
	toolCache := t.TempDir()
	run := func(tree, version, path string) (string, string, error) {
		tmp := t.TempDir()
		out := filepath.Join(tmp, "out")
		cmd := exec.Command(filepath.Join(tree, "action", "setup-cipack.sh"))
		cmd.Env = []string{"PATH=" + path, "RUNNER_TEMP=" + tmp, "RUNNER_TOOL_CACHE=" + toolCache, "GITHUB_OUTPUT=" + out,
			"CIPACK_VERSION=" + version, "CIPACK_RELEASE_BASE=" + srv.URL}
		log, err := cmd.CombinedOutput()
		b, _ := os.ReadFile(out)
		return string(log), string(b), err
	}
	// A PATH without cipack and without go: only the release path is left.
	const noGo = "/usr/bin:/bin"

	// The action used at @v1: the release commit says v9.9.9.
	log, outputs, err := run(actionTree("v9.9.9"), "v1", noGo)
	if err != nil || !strings.Contains(log, "ref 'v1' is release v9.9.9") || !strings.Contains(log, "installed release v9.9.9 (verified)") {
		t.Fatalf("install at @v1: %v\n%s", err, log)
	}
	bin := strings.TrimPrefix(strings.TrimSpace(outputs), "path=")
	if v, err := exec.Command(bin, "--version").CombinedOutput(); err != nil {
		t.Fatalf("installed binary does not run: %v %s", err, v)
	}
	// A second job on the same runner takes it from the tool cache.
	requests = 0
	if log, _, err := run(actionTree(""), "v9.9.9", noGo); err != nil || !strings.Contains(log, "from the tool cache") || requests != 0 {
		t.Fatalf("tool cache: %v, %d requests\n%s", err, requests, log)
	}

	// A tampered asset is refused (and not cached).
	tamper = true
	toolCache = t.TempDir()
	log, _, err = run(actionTree(""), "v9.9.9", noGo)
	if err == nil || !strings.Contains(log, "checksum mismatch") {
		t.Fatalf("a tampered asset must be refused: %v\n%s", err, log)
	}
	tamper = false

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
	base := []string{"sh", "dirname", "expr", "tr", "uname", "mkdir", "grep", "sed", "sha256sum", "mv", "chmod", "rm", "cat"}
	withWget := only(base...)
	curl, _ := exec.LookPath("curl")
	// A wget that is curl underneath: the script's wget branch, its
	// arguments (-q -O FILE URL) and its verification are what is tested.
	stub := "#!/bin/sh\n[ \"$1\" = -q ] && [ \"$2\" = -O ] || exit 2\nexec " + curl + " -fsSL -o \"$3\" \"$4\"\n"
	if err := os.WriteFile(filepath.Join(withWget, "wget"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	toolCache = t.TempDir()
	if log, _, err := run(actionTree("v9.9.9"), "v1", withWget); err != nil || !strings.Contains(log, "installed release v9.9.9 (verified)") {
		t.Fatalf("with wget only: %v\n%s", err, log)
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
