package pull

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/testenv"
)

// A full disk while a layer is unpacked into the store, or its blob kept
// in --builder-blobs, is exit 13 naming that directory and saying to free
// space there: not "registry unreachable" (exit 4), as a local errno
// once read to registry.Classify.
func TestFullDiskIsNamed(t *testing.T) {
	testenv.NeedRoot(t)
	host, c := testRegistry(t)
	noise := make([]byte, 2<<20) // incompressible: its blob is 2 MiB too
	rand.Read(noise)
	ref := push(t, host, "builder", tarLayer(t, file("usr/lib/big", string(noise), 0o644)))
	for _, tc := range []struct {
		name         string
		store, blobs func(full string) string
	}{
		{"store", func(full string) string { return filepath.Join(full, "store") }, func(string) string { return "" }},
		{"blobs", func(string) string { return filepath.Join(t.TempDir(), "store") }, func(full string) string { return filepath.Join(full, "blobs") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			full := testenv.Tmpfs(t, "1M")
			store, blobs := tc.store(full), tc.blobs(full)
			_, err := PrepareWith(context.Background(), c, ref, store, Blobs(blobs))
			named := store
			if blobs != "" {
				named = blobs
			}
			if exit.Code(err) != exit.Sandbox || !strings.Contains(err.Error(), "free space on the filesystem holding "+named) ||
				!strings.Contains(err.Error(), "no space left on device") {
				t.Fatalf("err = %v (exit %d), want exit %d naming %s", err, exit.Code(err), exit.Sandbox, named)
			}
		})
	}
}
