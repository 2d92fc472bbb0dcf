package build

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/buildpacks/lifecycle/platform/files"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/cipack/cipack/internal/exit"
)

// Before restore nothing in the layers dir may be a link; before export
// a link two levels down or anywhere in sbom/ is refused, naming the
// buildpack, and a link inside a layer's own content is not.
func TestLayerGuardRefusesLinksNamingTheBuildpack(t *testing.T) {
	layers := t.TempDir()
	names := buildpackNames{"acme_node": "acme/node"}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(layers, "acme_node", "deps", "bin"), 0o755))
	must(os.Symlink("/etc", filepath.Join(layers, "acme_node", "deps", "bin", "tool")))
	if err := refuseUnsafeForExport(layers, names); err != nil {
		t.Fatalf("a link inside a layer's content: %v", err)
	}
	if err := refuseUnsafe(layers, 0, names); exit.Code(err) != exit.Build || !strings.Contains(err.Error(), "buildpack acme/node") {
		t.Errorf("before restore, any link: got %v", err)
	}
	must(os.Symlink("/analyzed", filepath.Join(layers, "acme_node", "analyzed")))
	err := refuseUnsafeForExport(layers, names)
	if exit.Code(err) != exit.Build || !strings.Contains(err.Error(), "buildpack acme/node") || !strings.Contains(err.Error(), "<layers>/acme_node/analyzed") {
		t.Errorf("a layer that is a link: got %v", err)
	}
	must(os.Remove(filepath.Join(layers, "acme_node", "analyzed")))
	must(os.MkdirAll(filepath.Join(layers, "sbom", "launch", "acme_node", "deps"), 0o755))
	must(os.Symlink("/proc/self", filepath.Join(layers, "sbom", "launch", "acme_node", "deps", "sbom.cdx.json")))
	if err := refuseUnsafeForExport(layers, names); exit.Code(err) != exit.Build || !strings.Contains(err.Error(), "buildpack acme/node") {
		t.Errorf("a link in sbom/: got %v", err)
	}
}

// A launch.toml label in io.buildpacks. is refused naming the buildpack;
// other labels pass.
func TestRefuseBuildpackLabels(t *testing.T) {
	layers := t.TempDir()
	dir := filepath.Join(layers, "acme_node")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(body string) {
		if err := os.WriteFile(filepath.Join(dir, "launch.toml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("[[labels]]\nkey = \"org.example.team\"\nvalue = \"x\"\n")
	if err := refuseBuildpackLabels(layers, buildpackNames{"acme_node": "acme/node"}); err != nil {
		t.Fatalf("an ordinary label: %v", err)
	}
	write("[[labels]]\nkey = \"io.buildpacks.project.metadata\"\nvalue = \"{}\"\n")
	err := refuseBuildpackLabels(layers, buildpackNames{"acme_node": "acme/node"})
	if exit.Code(err) != exit.Build || !strings.Contains(err.Error(), "buildpack acme/node") || !strings.Contains(err.Error(), "io.buildpacks.project.metadata") {
		t.Errorf("a record label: got %v", err)
	}
	write("[[labels]\n")
	if err := refuseBuildpackLabels(layers, nil); exit.Code(err) != exit.Build {
		t.Errorf("a malformed launch.toml: got %v", err)
	}
}

// analyzed.toml's images must be in the run image's and the previous
// image's repositories cipack chose: a poisoned cache restored over it
// named another repository's image, which the credentialed exporter
// then copied into the user's.
func TestAnalyzedNamesOnlyTheChosenRepositories(t *testing.T) {
	run, _ := name.ParseReference("127.0.0.1:5000/run:v1")
	expect, err := expectAnalyzed(run, "127.0.0.1:5000/team/app:latest")
	if err != nil {
		t.Fatal(err)
	}
	digest := "@sha256:" + strings.Repeat("a", 64)
	ok := files.Analyzed{RunImage: &files.RunImage{Reference: "127.0.0.1:5000/run" + digest},
		PreviousImage: &files.ImageIdentifier{Reference: "127.0.0.1:5000/team/app" + digest}}
	if err := expect.check(ok); err != nil {
		t.Fatalf("the chosen images: %v", err)
	}
	for what, a := range map[string]files.Analyzed{
		"another run image":      {RunImage: &files.RunImage{Reference: "127.0.0.1:5000/private/secret" + digest}},
		"another previous image": {RunImage: ok.RunImage, PreviousImage: &files.ImageIdentifier{Reference: "127.0.0.1:5000/private/secret" + digest}},
		"not a reference":        {RunImage: &files.RunImage{Reference: "::"}},
	} {
		if err := expect.check(a); err == nil {
			t.Errorf("%s: taken", what)
		}
	}
	if err := (analyzedRepos{run: expect.run}).check(ok); err == nil {
		t.Errorf("a previous image where cipack passed none: taken")
	}
}

// analyzed.toml must name a run image before export (the exporter would
// dereference a missing one), and is then root's and read-only.
func TestLockAnalyzed(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "analyzed.toml")
	if err := os.WriteFile(p, []byte("[metadata]\n[types]\ncache = true\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	run, _ := name.ParseReference("r:v1")
	expect, _ := expectAnalyzed(run, "127.0.0.1:5000/team/app:latest")
	if err := lockAnalyzed(dir, expect); exit.Code(err) != exit.Lifecycle {
		t.Errorf("a layer's metadata in its place: got %v", err)
	}
	if os.Geteuid() != 0 {
		return // making it root's needs root (pull mode runs as root)
	}
	if err := os.WriteFile(p, []byte("[run-image]\nreference = \"r@sha256:"+strings.Repeat("a", 64)+"\"\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := lockAnalyzed(dir, expect); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o644 || st.Uid != 0 {
		t.Errorf("analyzed.toml is %v owned by %d", fi.Mode(), st.Uid)
	}
}
