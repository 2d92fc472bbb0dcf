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

	run := func() (string, string, error) {
		tmp := t.TempDir()
		out := filepath.Join(tmp, "out")
		cmd := exec.Command(filepath.Join(rootDir, "action", "setup-cipack.sh"))
		// A PATH without cipack and without go: only the release path is left.
		cmd.Env = []string{"PATH=/usr/bin:/bin", "RUNNER_TEMP=" + tmp, "GITHUB_OUTPUT=" + out,
			"CIPACK_VERSION=v9.9.9", "CIPACK_RELEASE_BASE=" + srv.URL}
		log, err := cmd.CombinedOutput()
		b, _ := os.ReadFile(out)
		return string(log), string(b), err
	}
	log, outputs, err := run()
	if err != nil || !strings.Contains(log, "installed release v9.9.9") {
		t.Fatalf("release install: %v\n%s", err, log)
	}
	bin := strings.TrimPrefix(strings.TrimSpace(outputs), "path=")
	if v, err := exec.Command(bin, "--version").CombinedOutput(); err != nil {
		t.Fatalf("installed binary does not run: %v %s", err, v)
	}
	tamper = true
	log, _, err = run()
	if err == nil || !strings.Contains(log, "checksum mismatch") {
		t.Fatalf("a tampered asset must be refused: %v\n%s", err, log)
	}
}
