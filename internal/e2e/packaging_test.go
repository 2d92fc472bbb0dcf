package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/testenv"
)

// One Go version: every module's go directive, the README and the
// Dockerfile's build image name the same one, and the Dockerfile's base
// images carry exact versions (a floating tag changes under a release).
func TestOneGoVersionAndPinnedImages(t *testing.T) {
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	read := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+\.\d+)$`)
	want := ""
	for _, mod := range []string{"go.mod", "action/acttest/go.mod", "tekton/tektontest/go.mod"} {
		m := goLine.FindStringSubmatch(read(mod))
		if m == nil {
			t.Fatalf("%s states no exact go version", mod)
		}
		if want == "" {
			want = m[1]
		}
		if m[1] != want {
			t.Errorf("%s says go %s, go.mod says %s", mod, m[1], want)
		}
	}
	if !strings.Contains(read("README.md"), "Go "+want+" or newer") {
		t.Errorf("the README should state Go %s", want)
	}
	docker := read("Dockerfile")
	if !strings.Contains(docker, "FROM golang:"+want+"-") {
		t.Errorf("the Dockerfile should build with golang:%s", want)
	}
	for _, from := range regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(docker, -1) {
		img := from[1]
		if img == "scratch" {
			continue
		}
		if !regexp.MustCompile(`:\d+\.\d+\.\d+|@sha256:`).MatchString(img) {
			t.Errorf("base image %s is not pinned to an exact version", img)
		}
	}
	if ignore := read(".dockerignore"); !strings.Contains(ignore, ".git") {
		t.Errorf(".dockerignore should keep .git out of the build context")
	}
}
