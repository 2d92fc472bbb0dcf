package pull

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/testenv"
)

// openBlobs opens a fresh blob cache in a temp dir.
func openBlobs(t *testing.T) *blobCache {
	t.Helper()
	c, err := Blobs(filepath.Join(t.TempDir(), "blobs")).open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// putBlob writes body as the blob of its own digest, and returns the digest.
func putBlob(t *testing.T, c *blobCache, body string) v1.Hash {
	t.Helper()
	sum := sha256.Sum256([]byte(body))
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if err := os.WriteFile(filepath.Join(c.top, "blobs", "sha256", d.Hex), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// A link at the top of --builder-blobs (what a cache restore can put at
// the Action's $CACHE_DIR/blobs) is refused naming --builder-blobs, and
// nothing behind it is written or pruned.
func TestBlobsTopLinkIsRefused(t *testing.T) {
	testenv.NeedRoot(t)
	host, c := testRegistry(t)
	ref := push(t, host, "builder", builderLayers(t)...)
	outside := t.TempDir()
	stray := filepath.Join(outside, "blobs", "sha256", strings.Repeat("a", 64))
	if err := os.MkdirAll(filepath.Dir(stray), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stray, []byte("the host's"), 0o644); err != nil {
		t.Fatal(err)
	}
	blobs := filepath.Join(t.TempDir(), "blobs")
	if err := os.Symlink(outside, blobs); err != nil {
		t.Fatal(err)
	}
	_, err := PrepareWith(context.Background(), c, ref, filepath.Join(t.TempDir(), "store"), Blobs(blobs))
	if exit.Code(err) != exit.Sandbox || !strings.HasPrefix(err.Error(), "--builder-blobs: "+blobs+" is a symbolic link") {
		t.Fatalf("err = %v (exit %d), want exit %d naming --builder-blobs and the link", err, exit.Code(err), exit.Sandbox)
	}
	wantContent(t, stray, "the host's")
	if es := listOrNil(filepath.Join(outside, "blobs", "sha256")); len(es) != 1 {
		t.Fatalf("the directory behind the link was written: %v", es)
	}
}

// Blobs are pruned only in a directory that is cipack's: a fresh one, or
// one holding only the layout (a cache from before the marker); an OCI
// layout of the user's given by mistake keeps its other blobs.
func TestBlobsPrunedOnlyInOwnCache(t *testing.T) {
	testenv.NeedRoot(t)
	host, c := testRegistry(t)
	ref := push(t, host, "builder", builderLayers(t)...)
	strayName := strings.Repeat("b", 64)
	for _, tc := range []struct {
		name   string
		plant  []string // files made before the first build
		pruned bool
	}{
		{"fresh", nil, true},
		{"before the marker", []string{"oci-layout"}, true},
		{"the user's layout", []string{"oci-layout", "index.json"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blobs := filepath.Join(t.TempDir(), "blobs")
			stray := filepath.Join(blobs, "blobs", "sha256", strayName)
			if err := os.MkdirAll(filepath.Dir(stray), 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range tc.plant {
				if err := os.WriteFile(filepath.Join(blobs, f), []byte("{}"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for range 2 { // the second build sees the first one's marker
				if err := os.WriteFile(stray, []byte("another image's"), 0o644); err != nil {
					t.Fatal(err)
				}
				if _, err := PrepareWith(context.Background(), c, ref, filepath.Join(t.TempDir(), "store"), Blobs(blobs)); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Lstat(stray); os.IsNotExist(err) != tc.pruned {
					t.Fatalf("stray blob pruned: %v, want %v", os.IsNotExist(err), tc.pruned)
				}
			}
			if es := listOrNil(filepath.Join(blobs, trashDir)); len(es) != 0 {
				t.Fatalf("the trash was not emptied: %v", es)
			}
		})
	}
}

// A full disk where the blob cache's layout is made is exit 13 naming
// --builder-blobs' directory, not exit 2.
func TestFullDiskOpeningBlobs(t *testing.T) {
	testenv.NeedRoot(t)
	host, c := testRegistry(t)
	ref := push(t, host, "builder", builderLayers(t)...)
	full := testenv.Tmpfs(t, "64k")
	fill(t, full)
	blobs := filepath.Join(full, "blobs")
	_, err := PrepareWith(context.Background(), c, ref, filepath.Join(t.TempDir(), "store"), Blobs(blobs))
	if exit.Code(err) != exit.Sandbox || !strings.Contains(err.Error(), "free space on the filesystem holding "+blobs) {
		t.Fatalf("err = %v (exit %d), want exit %d naming %s", err, exit.Code(err), exit.Sandbox, blobs)
	}
}

// fill writes into dir until its filesystem is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !exit.IsNoSpace(err) {
				t.Fatal(err)
			}
			return
		}
	}
}

// A hash cut short by a cancellation proves nothing: the blob is kept
// (it was removed as a mismatch, and fetched again next time).
func TestCanceledHashKeepsBlob(t *testing.T) {
	c := openBlobs(t)
	d := putBlob(t, c, "a good blob")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if c.verified(ctx, d, int64(len("a good blob"))) {
		t.Fatal("verified with a canceled ctx")
	}
	wantContent(t, filepath.Join(c.top, "blobs", "sha256", d.Hex), "a good blob")
	if !c.verified(context.Background(), d, int64(len("a good blob"))) {
		t.Fatal("the good blob does not verify afterwards")
	}
}

// A mismatch discards what was hashed, not what is at the name now:
// another build sharing the cache may have renamed its good blob there.
func TestMismatchSparesBlobRenamedInSince(t *testing.T) {
	c := openBlobs(t)
	d := putBlob(t, c, "good")
	p := filepath.Join(c.top, "blobs", "sha256", d.Hex)
	if err := os.WriteFile(p, []byte("bad"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, fi, err := openBlob(c.sha, d.Hex)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.WriteFile(p+".new", []byte("good"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".new", p); err != nil {
		t.Fatal(err)
	}
	if err := c.discard(d.Hex, fi); err != nil {
		t.Fatal(err)
	}
	wantContent(t, p, "good")
	// What was hashed, still there, goes.
	if err := c.discard(d.Hex, mustLstat(t, p)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Fatalf("the discarded blob is still there: %v", err)
	}
}

func mustLstat(t *testing.T, p string) os.FileInfo {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

// A directory of many files in a blob's place is renamed aside at once,
// not removed while the check waits; the trash is emptied afterwards and
// that stops with ctx (what is left, the next build removes).
func TestPlantedTreeGoesToTrash(t *testing.T) {
	c := openBlobs(t)
	d := putBlob(t, c, "good")
	p := filepath.Join(c.top, "blobs", "sha256", d.Hex)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		sub := filepath.Join(p, fmt.Sprintf("d%d", i%20))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprint(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if c.verified(context.Background(), d, 4) {
		t.Fatal("a directory verified as a blob")
	}
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Fatalf("the planted directory is still in the blob's place: %v", err)
	}
	trash := filepath.Join(c.top, trashDir)
	if es := listOrNil(trash); len(es) != 1 {
		t.Fatalf("the trash holds %v, want the planted directory", es)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.emptyTrash(ctx); err == nil {
		t.Fatal("emptying the trash did not stop with ctx")
	}
	if es := listOrNil(trash); len(es) != 1 {
		t.Fatalf("a canceled emptying removed %v", es)
	}
	if err := c.emptyTrash(context.Background()); err != nil {
		t.Fatal(err)
	}
	if es := listOrNil(trash); len(es) != 0 {
		t.Fatalf("the trash still holds %v", es)
	}
}

// A blob swapped for a FIFO after it was verified is the blob cache's
// failure, exit 13 naming --builder-blobs, not an internal error.
func TestBlobSwappedAfterVerifyIsSandboxError(t *testing.T) {
	c := openBlobs(t)
	d := putBlob(t, c, "good")
	if !c.verified(context.Background(), d, 4) {
		t.Fatal("the blob does not verify")
	}
	p := filepath.Join(c.top, "blobs", "sha256", d.Hex)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := blobLayer{c: c, name: d.Hex}.Compressed()
	if exit.Code(err) != exit.Sandbox || !strings.HasPrefix(err.Error(), "--builder-blobs: ") || !strings.Contains(err.Error(), "changed since it was verified") {
		t.Fatalf("err = %v (exit %d), want exit %d naming --builder-blobs", err, exit.Code(err), exit.Sandbox)
	}
}
