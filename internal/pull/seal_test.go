package pull

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// sealedTree stores a tree of files files (100 a directory, a symlink
// every tenth) as a completed layer, and returns the store and its diffID.
func sealedTree(tb testing.TB, files int) (*store, v1.Hash) {
	tb.Helper()
	st, err := openStore(filepath.Join(tb.TempDir(), "cache"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	id := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("5", 64)}
	tree := filepath.Join(st.dir, treeName(id.Hex))
	for i := range files {
		d := filepath.Join(tree, "usr", fmt.Sprintf("d%03d", i/100))
		if i%100 == 0 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				tb.Fatal(err)
			}
		}
		p := filepath.Join(d, fmt.Sprintf("f%03d", i%100))
		if i%10 == 9 {
			err = os.Symlink("f000", p)
		} else {
			err = os.WriteFile(p, []byte(p), 0o644)
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	if err := st.complete(id); err != nil {
		tb.Fatal(err)
	}
	return st, id
}

// The seal sees every entry, and a tree checks against its own marker.
func TestSealCoversTheTree(t *testing.T) {
	st, id := sealedTree(t, 250)
	if why := st.verify(context.Background(), id); why != "" {
		t.Fatalf("a fresh tree fails: %s", why)
	}
	m, err := st.readMarker(id.Hex)
	if err != nil || m.Entries != 1+1+3+250 { // root, usr, 3 dirs, the files
		t.Fatalf("marker %+v %v", m, err)
	}
	if err := os.Chmod(filepath.Join(st.dir, treeName(id.Hex), "usr/d001/f050"), 0o600); err != nil {
		t.Fatal(err)
	}
	if why := st.verify(context.Background(), id); !strings.Contains(why, "changed since it was verified") {
		t.Fatalf("a changed tree: %q", why)
	}
}

// BenchmarkSealCheck is Prepare's warm path for one layer of about 5,000
// files: read the marker, walk and hash the tree's lstat facts.
func BenchmarkSealCheck(b *testing.B) {
	st, id := sealedTree(b, 5000)
	for b.Loop() {
		if why := st.verify(context.Background(), id); why != "" {
			b.Fatal(why)
		}
	}
}

// The seal walk over a restored tree stops with the build's context
// (SIGTERM), and a check cut short throws no good tree away.
func TestSealCheckStopsWithContext(t *testing.T) {
	st, id := sealedTree(t, 3000)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if why := st.verify(ctx, id); !strings.Contains(why, "context canceled") {
		t.Fatalf("a canceled check: %q", why)
	}
	_, err := st.ensure(ctx, layerJob{ref: "builder", index: 1, count: 1, layer: diffIDOnly{id}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("ensure on a canceled context: %v", err)
	}
	if why := st.verify(context.Background(), id); why != "" {
		t.Fatalf("the tree was harmed by a canceled check: %s", why)
	}
}

// diffIDOnly is a layer of which ensure needs only the diffID (its tree
// is already in the store).
type diffIDOnly struct{ id v1.Hash }

func (l diffIDOnly) DiffID() (v1.Hash, error)           { return l.id, nil }
func (diffIDOnly) Digest() (v1.Hash, error)             { return v1.Hash{}, errors.New("not read") }
func (diffIDOnly) Compressed() (io.ReadCloser, error)   { return nil, errors.New("not read") }
func (diffIDOnly) Uncompressed() (io.ReadCloser, error) { return nil, errors.New("not read") }
func (diffIDOnly) Size() (int64, error)                 { return 0, errors.New("not read") }
func (diffIDOnly) MediaType() (types.MediaType, error)  { return "", errors.New("not read") }

// A marker that counts no entries (0 or fewer; a tree has at least its
// root) is invalid, not a marker whose walk has no bound: a restored
// tree of any size is never walked past what was verified.
func TestMarkerWithoutEntriesIsInvalid(t *testing.T) {
	st, id := sealedTree(t, 10)
	m, err := st.readMarker(id.Hex)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, -1} {
		m.Entries = n
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(st.dir, markerName(id.Hex)), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if why := st.verify(context.Background(), id); !strings.Contains(why, "completion marker") {
			t.Fatalf("a marker counting %d entries: %q", n, why)
		}
	}
}
