package e2e

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/testenv"
)

// Images the app names (project.toml's builder, a docker:// uri) are read
// without the user's credentials: a pull request must not get a private
// image into build code, nor send the password to a registry it picks.
// The same image named by the workflow (--buildpack) is read with them.
func TestAppNamedImagesGetNoCredentials(t *testing.T) {
	w := packWorld(t)
	auth, err := testenv.StartProxy(fx.Registry.Host, testenv.ProxyOptions{User: "ci", Password: "app-must-not-use-this"})
	if err != nil {
		t.Fatal(err)
	}
	defer auth.Close()
	private := func(ref string) string { return strings.Replace(ref, fx.Registry.Host, auth.Host, 1) }
	creds := []string{"CIPACK_REGISTRY_USERNAME=ci", "CIPACK_REGISTRY_PASSWORD=app-must-not-use-this"}
	for _, tc := range []struct {
		name, descriptor string
		args             []string
		want             int
	}{
		{"project builder", fmt.Sprintf("[io.buildpacks]\nbuilder = %q\n", private(w.builderImage)), nil, exit.RegistryAuth},
		{"project uri", fmt.Sprintf("[[io.buildpacks.group]]\nuri = \"docker://%s\"\n", private(w.bpLocal)), []string{"--builder", w.builderImage}, exit.RegistryAuth},
		{"flag", "", []string{"--builder", w.builderImage, "--buildpack", "docker://" + private(w.bpLocal)}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{}
			if tc.descriptor != "" {
				files = project(tc.descriptor)
			}
			image, repo := w.image("creds-"+strings.ReplaceAll(tc.name, " ", "-"), "pull")
			r := w.pull(t, w.app(t, files, nil), creds, append([]string{"--image", image}, tc.args...)...)
			if r.code != tc.want {
				t.Fatalf("exit %d, want %d\n%s", r.code, tc.want, r.stderr)
			}
			if strings.Contains(r.stdout+r.stderr, "app-must-not-use-this") {
				t.Fatal("the password was printed")
			}
			if tc.want != 0 && len(tags(t, repo)) != 0 {
				t.Fatal("a refused build pushed")
			}
		})
	}
}

// An app's .tgz buildpack may hold setuid-root files, world-writable
// directories and files owned by anyone: the build gets none of that.
// Its bin/build reports what it found.
func TestAppArchiveBuildpackBringsNoPrivilege(t *testing.T) {
	w := packWorld(t)
	for _, mode := range packModes {
		t.Run(mode, func(t *testing.T) {
			app := w.app(t, project("[[io.buildpacks.group]]\nuri = \"evil.tgz\"\n"), nil)
			writeTgz(t, filepath.Join(app, "evil.tgz"), []tarEntry{
				{name: "buildpack.toml", mode: 0o644, body: "api = \"0.10\"\n[buildpack]\nid = \"evil/bp\"\nversion = \"1\"\n"},
				{name: "bin/", mode: 0o777, dir: true},
				{name: "bin/detect", mode: 0o755, body: "#!/bin/sh\nexit 0\n"},
				{name: "bin/suid", mode: 0o4755, body: "not really a binary"},
				{name: "bin/build", mode: 0o755, body: "#!/bin/sh\nls -ln \"$CNB_BUILDPACK_DIR/bin\" | sed 's/^/evil: /'\n" +
					"touch \"$CNB_BUILDPACK_DIR/bin/written\" 2>/dev/null && echo evil: wrote its own dir\nexit 0\n"},
			})
			image, _ := w.image("evil-tgz", mode)
			r := w.build(t, mode, app, nil, "--image", image)
			if r.code != 0 {
				t.Fatalf("exit %d\n%s", r.code, r.stderr)
			}
			var listing []string
			for _, l := range strings.Split(r.stderr+r.stdout, "\n") {
				if strings.HasPrefix(l, "evil: ") {
					listing = append(listing, l)
				}
			}
			all := strings.Join(listing, "\n")
			t.Log(all)
			if len(listing) < 3 || strings.Contains(all, "rws") || strings.Contains(all, "wrote its own dir") || strings.Contains(all, "rwxrwxrwx") {
				t.Fatalf("the buildpack's files as build code saw them:\n%s\n%s", all, r.stderr)
			}
		})
	}
}

type tarEntry struct {
	name, body string
	mode       int64
	dir        bool
}

// writeTgz writes entries owned by root, as an archive made on another
// machine may claim.
func writeTgz(t *testing.T, path string, entries []tarEntry) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: 0, Gid: 0, Typeflag: tar.TypeReg, Size: int64(len(e.body))}
		if e.dir {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if !e.dir {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
}
