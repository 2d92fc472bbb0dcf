package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/testenv"
)

// The laptop quick start of docs/quickstart.md, run as it is written: in
// bash, through the real sudo, from the directory above the app. Swapped:
// the public builder and registry for the test's, `cipack` for this
// build's binary, and its layer store for a temp dir (the default is
// /var/cache/cipack, and the tests leave nothing at the host's root).
func TestQuickStartLaptop(t *testing.T) {
	needFixture(t)
	sudo, err := exec.LookPath("sudo")
	if err != nil {
		t.Fatal("the laptop quick start runs through sudo: install Debian's sudo (make setup does)")
	}
	block, err := testenv.QuickStart("laptop")
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(fx.Dir, "quickstart-"+randSuffix())
	root, _ := testenv.ModuleRoot()
	if err := copyDir(filepath.Join(root, "examples", "app"), filepath.Join(base, "my-app")); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(base, "home")
	if err := os.MkdirAll(filepath.Join(home, ".docker"), 0o700); err != nil {
		t.Fatal(err)
	}
	// What `docker login` leaves: the config cipack reads through sudo.
	if err := os.WriteFile(filepath.Join(home, ".docker", "config.json"), []byte(`{"auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	swaps := []struct{ from, to string }{
		{"heroku/builder:24", fx.BuilderImage},
		{"ghcr.io/OWNER/", fx.Registry.Host + "/quickstart/"},
		{" cipack build ", " " + fx.Cipack + " build --builder-cache " + filepath.Join(base, "builders") + " "},
		{"sudo ", sudo + " "},
	}
	for _, s := range swaps {
		if !strings.Contains(block, s.from) {
			t.Fatalf("the laptop quick start no longer has %q: update the test's swaps\n%s", s.from, block)
		}
		block = strings.ReplaceAll(block, s.from, s.to)
	}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", block)
	cmd.Dir = base
	cmd.Env = append(os.Environ(), "HOME="+home)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("the laptop quick start failed: %v\n%s", err, errb.String())
	}
	ref := strings.TrimSpace(out.String())
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(fx.Registry.Host) + `/quickstart/my-app@sha256:[0-9a-f]{64}$`).MatchString(ref) {
		t.Fatalf("stdout %q, want IMAGE@DIGEST\n%s", ref, errb.String())
	}
	if !strings.Contains(errb.String(), "unpacked") {
		t.Fatalf("not a pull-mode build:\n%s", errb.String())
	}
	if got := testenv.MustHead(t, fx.Registry.Host+"/quickstart/my-app:latest").String(); !strings.HasSuffix(ref, "@"+got) {
		t.Fatalf(":latest is %s, cipack printed %s", got, ref)
	}
	printed, err := testenv.RunImageProcess(context.Background(), ref, "web", filepath.Join(base, "run"))
	if err != nil || !strings.Contains(printed, "Hello from cipack!") {
		t.Fatalf("the image printed %q (%v)", printed, err)
	}
}

// The laptop install block downloads what `make release` publishes: no
// release can be fetched in the tests, so its names are checked against
// the Makefile's.
func TestQuickStartInstallNamesTheReleaseAssets(t *testing.T) {
	block, err := testenv.QuickStart("install")
	if err != nil {
		t.Fatal(err)
	}
	root, _ := testenv.ModuleRoot()
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"LIFECYCLE_BINS := lifecycle launcher", "RELEASE_ARCHES ?= amd64 arm64", "$(DIST)/cipack_linux_$$arch", "$(DIST)/$${b}_linux_$$arch", "> checksums.txt"} {
		if !strings.Contains(string(mk), want) {
			t.Errorf("the Makefile's release no longer has %q: update the quick start's install block", want)
		}
	}
	for _, want := range []string{"for f in cipack lifecycle launcher;", `"$base/${f}_linux_$ARCH"`, `"$base/checksums.txt"`, "sha256sum --ignore-missing -c checksums.txt", "--proto '=https'", "releases/download/$VERSION"} {
		if !strings.Contains(block, want) {
			t.Errorf("the install block lacks %q", want)
		}
	}
}
