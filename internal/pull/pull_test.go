package pull

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/cipack/cipack/internal/testenv"
)

// layer makes a layer from tar entries.
func layer(t *testing.T, entries []tar.Header, bodies map[string]string) func() (io.ReadCloser, error) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		body := bodies[h.Name]
		h.Size = int64(len(body))
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(body))
	}
	_ = tw.Close()
	b := buf.Bytes()
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

// A hostile builder image cannot write outside its layer's directory: not
// with "..", nor through a symlink it ships first.
func TestUnpackStaysInsideTheLayer(t *testing.T) {
	testenv.NeedRoot(t) // extraction sets owners
	outside := t.TempDir()
	for name, entries := range map[string][]tar.Header{
		"dotdot": {{Name: "../../" + filepath.Base(outside) + "/escaped", Typeflag: tar.TypeReg, Mode: 0o644}},
		"symlink": {
			{Name: "link", Typeflag: tar.TypeSymlink, Linkname: outside},
			{Name: "link/escaped", Typeflag: tar.TypeReg, Mode: 0o644},
		},
	} {
		l, err := tarball.LayerFromOpener(layer(t, entries, map[string]string{}))
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "layer")
		err = unpackLayer(context.Background(), l, dir)
		if _, statErr := os.Stat(filepath.Join(outside, "escaped")); statErr == nil {
			t.Fatalf("%s: the layer wrote outside its directory", name)
		}
		switch name {
		case "dotdot": // cleaned into the layer
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if _, err := os.Stat(filepath.Join(dir, filepath.Base(outside), "escaped")); err != nil {
				t.Fatalf("%s: the entry should land inside the layer: %v", name, err)
			}
		case "symlink":
			if err == nil || !strings.Contains(err.Error(), "symlink") {
				t.Fatalf("%s: %v, want a refusal to write through the link", name, err)
			}
			if _, statErr := os.Stat(dir); statErr == nil {
				t.Fatalf("%s: a half-unpacked layer was kept", name)
			}
		}
	}
}
