package buildpacks

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/exit"
)

func TestLocateTakesEveryFormPackTakes(t *testing.T) {
	base := t.TempDir()
	for _, p := range []string{"bp", "bp.tgz", "app/inside", "paketo/procfile@5.0.0", "registry.example/bp/procfile:5", ".hidden/bp", "my.bp/x"} {
		if err := os.MkdirAll(filepath.Join(base, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	builder := func(id, version string) bool { return id == "paketo/procfile" && (version == "" || version == "5.0.0") }
	for _, tc := range []struct {
		raw       string
		root      string
		kind      Kind
		id, ver   string
		ref, path string
		errLike   string
	}{
		{raw: "bp", kind: Dir, path: filepath.Join(base, "bp")},
		{raw: "./bp/", kind: Dir, path: filepath.Join(base, "bp")},
		{raw: filepath.Join(base, "bp"), kind: Dir, path: filepath.Join(base, "bp")},
		{raw: "file://" + filepath.Join(base, "bp"), kind: Dir, path: filepath.Join(base, "bp")},
		{raw: "bp.tgz", kind: Archive, path: filepath.Join(base, "bp.tgz")},
		{raw: "docker://registry.example/bp/procfile:5", kind: Image, ref: "registry.example/bp/procfile:5"},
		{raw: "registry.example/bp/procfile@sha256:" + sixtyFour, kind: Image, ref: "registry.example/bp/procfile@sha256:" + sixtyFour},
		{raw: "urn:cnb:builder:paketo/procfile", kind: FromBuilder, id: "paketo/procfile"},
		{raw: "urn:cnb:builder:paketo/procfile@5.0.0", kind: FromBuilder, id: "paketo/procfile", ver: "5.0.0"},
		{raw: "from=builder:paketo/procfile", kind: FromBuilder, id: "paketo/procfile"},
		// A checkout holding a directory of the same name does not take
		// the builder's buildpack's place, nor an image's.
		{raw: "paketo/procfile@5.0.0", kind: FromBuilder, id: "paketo/procfile", ver: "5.0.0"},
		{raw: "./paketo/procfile@5.0.0", kind: Dir, path: filepath.Join(base, "paketo/procfile@5.0.0")},
		{raw: "registry.example/bp/procfile:5", kind: Image, ref: "registry.example/bp/procfile:5"},
		{raw: ".hidden/bp", kind: Dir, path: filepath.Join(base, ".hidden/bp")},
		{raw: "127.0.0.1:5000/bp/x", kind: Image, ref: "127.0.0.1:5000/bp/x"},
		{raw: "localhost/bp/x", kind: Image, ref: "localhost/bp/x"},
		{raw: "urn:cnb:builder", kind: BuilderOrder},
		{raw: "from=builder", kind: BuilderOrder},
		{raw: "paketo/procfile@9.9.9", errLike: "the builder has no buildpack"},
		{raw: "urn:cnb:registry:paketo/procfile", errLike: "Buildpack Registry"},
		{raw: "https://example.com/bp.tgz", errLike: "does not download"},
		{raw: "./missing/", errLike: "no such buildpack"},
		{raw: "", errLike: "empty"},
		{raw: "/etc", root: base, errLike: "only paths inside the app"},
		{raw: "../outside", root: filepath.Join(base, "app"), errLike: "leaves the app"},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			src := Source{Raw: tc.raw, Input: "--buildpack", Base: base, Root: tc.root}
			if tc.root != "" {
				src.Base = tc.root
			}
			l, err := Locate(src, builder, exists)
			if tc.errLike != "" {
				var ee *exit.Error
				if !errors.As(err, &ee) || ee.Code != exit.Usage || !strings.Contains(err.Error(), tc.errLike) || !strings.Contains(err.Error(), "--buildpack") {
					t.Fatalf("want a usage error naming --buildpack with %q, got %v", tc.errLike, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.Kind != tc.kind || l.ID != tc.id || l.Version != tc.ver || l.Ref != tc.ref || l.Path != tc.path {
				t.Fatalf("got kind %d id %q version %q ref %q path %q", l.Kind, l.ID, l.Version, l.Ref, l.Path)
			}
		})
	}
}

const sixtyFour = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestIDsAndVersionsAreCNBOnes(t *testing.T) {
	for _, id := range []string{"paketo-buildpacks/procfile", "local/bp", "a.b/c-d"} {
		if err := ValidID(id); err != nil {
			t.Errorf("%q: %v", id, err)
		}
	}
	for _, id := range []string{"", "app", "config", "../x", "a//b", "a/./b", "a b", "a_b", "/abs"} {
		if ValidID(id) == nil {
			t.Errorf("id %q accepted", id)
		}
	}
	for _, v := range []string{"1.2.3", "0.0.1-rc.1+build", "local-bp-version"} {
		if err := ValidVersion(v); err != nil {
			t.Errorf("%q: %v", v, err)
		}
	}
	for _, v := range []string{"", "..", "../../x", "1/2", ".hidden", "1..2", "a b"} {
		if ValidVersion(v) == nil {
			t.Errorf("version %q accepted", v)
		}
	}
}
