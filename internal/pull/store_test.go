package pull

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/testenv"
)

// A first Prepare unpacks every layer, exactly as the image has it; a
// second one only checks the seals.
func TestPrepareUnpacksThenReuses(t *testing.T) {
	testenv.NeedRoot(t)
	host, c := testRegistry(t)
	ref := push(t, host, "builder", builderLayers(t)...)
	cache := filepath.Join(t.TempDir(), "cache")
	b := prepare(t, c, ref, cache)
	if b.Unpacked != 2 || b.Verified != 0 || len(b.Layers) != 2 {
		t.Fatalf("first: unpacked %d verified %d layers %v", b.Unpacked, b.Verified, b.Layers)
	}
	if b.UID != "1000" || b.GID != "1001" || b.Labels["k"] != "v" || !strings.HasPrefix(b.Digest, "sha256:") || !strings.HasSuffix(b.Ref, "@"+b.Digest) {
		t.Fatalf("builder facts: %+v", b)
	}
	if fi, err := os.Stat(filepath.Join(b.Layers[0], "tmp")); err != nil || fi.Mode() != os.ModeDir|os.ModeSticky|0o777 {
		t.Fatalf("/tmp: %v %v, want drwxrwxrwt", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(b.Layers[0], "usr/bin/su")); err != nil || fi.Mode() != os.ModeSetuid|0o755 {
		t.Fatalf("su: %v %v, want setuid kept", fi.Mode(), err)
	}
	if fi, err := os.Stat(cache); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("store root %v %v, want 0700", fi.Mode(), err)
	}
	if got, err := Files(b.Layers).ReadFile("/cnb/order.toml"); err != nil || string(got) != "[[order]]\n" {
		t.Fatalf("order.toml: %q %v", got, err)
	}
	if _, err := Files(b.Layers).Stat("/etc/motd"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("whited-out /etc/motd: %v", err)
	}
	again := prepare(t, c, ref, cache)
	if again.Unpacked != 0 || again.Verified != 2 || !slices.Equal(again.Layers, b.Layers) {
		t.Fatalf("second: unpacked %d verified %d", again.Unpacked, again.Verified)
	}
}

// A stored tree changed after it was verified (edited, chmod'ed, or
// restored from a CI cache) is noticed by its seal and unpacked again
// from the registry.
func TestChangedLayerIsUnpackedAgain(t *testing.T) {
	testenv.NeedRoot(t)
	host, c := testRegistry(t)
	ref := push(t, host, "builder", builderLayers(t)...)
	cache := filepath.Join(t.TempDir(), "cache")
	b := prepare(t, c, ref, cache)
	order := filepath.Join(b.Layers[1], "cnb/order.toml")
	for name, change := range map[string]func() error{
		"content": func() error { return os.WriteFile(order, []byte("[[order]] # evil\n"), 0o644) },
		"mode":    func() error { return os.Chmod(order, 0o666) },
		"restored": func() error { // the same bytes and times, as a cache restore makes them
			fi, _ := os.Stat(order)
			if err := os.Remove(order); err != nil {
				return err
			}
			if err := os.WriteFile(order, []byte("[[order]]\n"), 0o644); err != nil {
				return err
			}
			return os.Chtimes(order, fi.ModTime(), fi.ModTime())
		},
		"added": func() error { return os.WriteFile(filepath.Join(b.Layers[1], "cnb/extra"), nil, 0o644) },
		// A faithful copy (modes, owners, mtimes, links), as a CI cache
		// restores it: only ctimes and inodes tell it apart.
		"restored whole": func() error {
			saved := filepath.Join(t.TempDir(), "saved")
			if out, err := exec.Command("cp", "-a", b.Layers[1], saved).CombinedOutput(); err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			if err := os.RemoveAll(b.Layers[1]); err != nil {
				return err
			}
			out, err := exec.Command("cp", "-a", saved, b.Layers[1]).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		},
	} {
		if err := change(); err != nil {
			t.Fatal(err)
		}
		got := prepare(t, c, ref, cache)
		if got.Unpacked != 1 || got.Verified != 1 || len(got.Repaired) != 1 || !strings.Contains(got.Repaired[0], "changed since it was verified") {
			t.Fatalf("%s: unpacked %d verified %d repaired %q", name, got.Unpacked, got.Verified, got.Repaired)
		}
		wantContent(t, order, "[[order]]\n")
		if _, err := os.Lstat(filepath.Join(b.Layers[1], "cnb/extra")); err == nil {
			t.Fatalf("%s: an added file survived", name)
		}
	}
}

// A marker cannot vouch for a tree it was not written for: a copied
// marker, a made-up seal, a marker that is a link, or none at all.
func TestForgedMarkerIsNotTrusted(t *testing.T) {
	testenv.NeedRoot(t)
	host, c := testRegistry(t)
	ref := push(t, host, "builder", builderLayers(t)...)
	cache := filepath.Join(t.TempDir(), "cache")
	b := prepare(t, c, ref, cache)
	tree := b.Layers[1]
	mk := tree + ".json"
	good, err := os.ReadFile(mk)
	if err != nil {
		t.Fatal(err)
	}
	plant := func() { // another tree at the layer's name
		if err := os.RemoveAll(tree); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(tree, "cnb"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tree, "cnb/order.toml"), []byte("evil"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	outside := t.TempDir()
	forged := strings.Replace(string(good), `"seal":"sha256:`, `"seal":"sha256:00`, 1)
	defer func() {
		if _, err := os.Stat(filepath.Join(outside, "cnb/order.toml")); err != nil {
			t.Errorf("a host file behind a planted link was removed: %v", err)
		}
	}()
	for name, forge := range map[string]func(){
		"copied marker": func() { plant(); os.WriteFile(mk, good, 0o600) },
		"made-up seal":  func() { plant(); os.WriteFile(mk, []byte(forged), 0o600) },
		"marker is a link": func() {
			plant()
			os.Remove(mk)
			os.WriteFile(mk+".real", good, 0o600)
			os.Symlink(mk+".real", mk)
		},
		"no marker": func() { plant(); os.Remove(mk) },
		"tree is a link": func() { // to a host directory, which must survive
			os.RemoveAll(tree)
			os.MkdirAll(filepath.Join(outside, "cnb"), 0o755)
			os.WriteFile(filepath.Join(outside, "cnb/order.toml"), []byte("host"), 0o644)
			os.Symlink(outside, tree)
			os.WriteFile(mk, good, 0o600)
		},
		"garbage marker": func() { plant(); os.WriteFile(mk, []byte("{"), 0o600) },
	} {
		forge()
		got := prepare(t, c, ref, cache)
		if got.Unpacked != 1 || len(got.Repaired) != 1 {
			t.Fatalf("%s: unpacked %d, repaired %q: the planted tree was trusted", name, got.Unpacked, got.Repaired)
		}
		wantContent(t, filepath.Join(tree, "cnb/order.toml"), "[[order]]\n")
		if fi, err := os.Lstat(tree); err != nil || !fi.IsDir() {
			t.Fatalf("%s: the tree is %v, %v", name, fi, err)
		}
		os.Remove(mk + ".real")
	}
}

// Two builds sharing one store both succeed: one unpacks each layer, the
// other waits for its lock and reuses it.
func TestConcurrentPrepareSharesTheStore(t *testing.T) {
	testenv.NeedRoot(t)
	host, c := testRegistry(t)
	ref := push(t, host, "builder", builderLayers(t)...)
	cache := filepath.Join(t.TempDir(), "cache")
	var wg sync.WaitGroup
	got := make([]*Builder, 4)
	errs := make([]error, len(got))
	for i := range got {
		wg.Go(func() { got[i], errs[i] = Prepare(context.Background(), c, ref, cache) })
	}
	wg.Wait()
	unpacked := 0
	for i, b := range got {
		if errs[i] != nil {
			t.Fatalf("build %d: %v", i, errs[i])
		}
		unpacked += b.Unpacked
		if !slices.Equal(b.Layers, got[0].Layers) {
			t.Fatalf("build %d got other layers", i)
		}
	}
	if unpacked != 2 {
		t.Fatalf("%d unpacks for 2 layers", unpacked)
	}
	for _, n := range storeEntries(t, cache) {
		if strings.HasPrefix(n, ".") {
			t.Fatalf("left behind: %s", n)
		}
	}
}

// What a build killed mid-unpack left is removed by the next one, unless
// a live build holds that layer's lock.
func TestStaleUnpackDirsAreRemoved(t *testing.T) {
	testenv.NeedRoot(t)
	host, c := testRegistry(t)
	ref := push(t, host, "builder", builderLayers(t)...)
	cache := filepath.Join(t.TempDir(), "cache")
	prepare(t, c, ref, cache)
	dead := strings.Repeat("d", 64)
	live := strings.Repeat("e", 64)
	for _, n := range []string{".unpack-" + dead + "-99999", ".unpack-" + live + "-1", ".unpack-garbage"} {
		if err := os.MkdirAll(filepath.Join(cache, layersDir, n, "usr/bin"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(cache, layersDir, ".marker-"+dead+"-99999"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := openStore(cache)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	unlock, err := st.tryLock(live)
	if err != nil || unlock == nil {
		t.Fatalf("lock: %v", err)
	}
	prepare(t, c, ref, cache)
	left := storeEntries(t, cache)
	if slices.ContainsFunc(left, func(n string) bool { return strings.Contains(n, dead) || strings.Contains(n, "garbage") }) {
		t.Fatalf("stale leftovers kept: %v", left)
	}
	if !slices.Contains(left, ".unpack-"+live+"-1") {
		t.Fatalf("a locked (live) unpack was removed: %v", left)
	}
	unlock()
	prepare(t, c, ref, cache)
	if left := storeEntries(t, cache); slices.Contains(left, ".unpack-"+live+"-1") {
		t.Fatalf("an unlocked leftover was kept: %v", left)
	}
}

// wrongDiffID is a layer whose config names a diffID its content does not
// hash to: what a corrupt or tampered registry would serve.
type wrongDiffID struct{ v1.Layer }

func (wrongDiffID) DiffID() (v1.Hash, error) {
	return v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}, nil
}

// A layer whose content is not its diffID fails with exit.Sandbox, naming
// the layer, and leaves nothing in the store.
func TestDiffIDMismatchKeepsNothing(t *testing.T) {
	testenv.NeedRoot(t)
	host, c := testRegistry(t)
	ref := push(t, host, "builder", wrongDiffID{tarLayer(t, file("cnb/order.toml", "x", 0o644))})
	cache := filepath.Join(t.TempDir(), "cache")
	_, err := Prepare(context.Background(), c, ref, cache)
	if exit.Code(err) != exit.Sandbox || !strings.Contains(err.Error(), "layer 1 of 1 (sha256:abab") || !strings.Contains(err.Error(), "failed verification") {
		t.Fatalf("err = %v, want exit %d naming the layer", err, exit.Sandbox)
	}
	if left := storeEntries(t, cache); len(left) != 0 {
		t.Fatalf("the store kept %v", left)
	}
}

// A hostile layer (a whiteout of "..", which once removed the whole
// store) is refused with exit.Sandbox and harms no other layer.
func TestHostileLayerIsRefused(t *testing.T) {
	testenv.NeedRoot(t)
	host, c := testRegistry(t)
	cache := filepath.Join(t.TempDir(), "cache")
	good := prepare(t, c, push(t, host, "good", builderLayers(t)...), cache)
	for _, hostile := range [][]tentry{
		{file(".wh...", "", 0o644)},
		{file("etc/.wh..", "", 0o644)},
		{file("../../escape", "x", 0o644)},
		{link("cnb", "/"), file("cnb/etc/passwd", "x", 0o644)},
	} {
		_, err := Prepare(context.Background(), c, push(t, host, "evil", tarLayer(t, hostile...)), cache)
		if exit.Code(err) != exit.Sandbox || !strings.Contains(err.Error(), "layer 1 of 1") {
			t.Fatalf("%s: err = %v, want exit %d", hostile[len(hostile)-1].h.Name, err, exit.Sandbox)
		}
	}
	if again := prepare(t, c, good.Ref, cache); again.Verified != 2 {
		t.Fatalf("the good builder's layers were harmed: %+v", again)
	}
}

// The store's root is cipack's own, mode 0700: a looser mode is fixed; a
// link, or a directory someone else owns, is refused, naming it.
func TestStoreRootIsOwnedAndPrivate(t *testing.T) {
	testenv.NeedRoot(t)
	top := t.TempDir()
	loose := filepath.Join(top, "loose")
	if err := os.Mkdir(loose, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(loose, 0o1777)
	outside := filepath.Join(top, "outside")
	os.Mkdir(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "keep"), []byte("keep"), 0o644)
	os.Symlink(outside, filepath.Join(loose, layersDir)) // as a restored cache could hold
	st, err := openStore(loose)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if fi, _ := os.Stat(loose); fi.Mode() != os.ModeDir|0o700 {
		t.Fatalf("mode %v, want drwx------", fi.Mode())
	}
	if fi, err := os.Lstat(filepath.Join(loose, layersDir)); err != nil || !fi.IsDir() {
		t.Fatalf("layers: %v %v, want a real directory", fi, err)
	}
	wantContent(t, filepath.Join(outside, "keep"), "keep")

	// A directory given by mistake (a home, /var/cache) is left alone.
	home := filepath.Join(top, "home")
	os.Mkdir(home, 0o755)
	os.WriteFile(filepath.Join(home, "notes"), nil, 0o644)
	if _, err := openStore(home); exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), `holds "notes"`) {
		t.Fatalf("a foreign directory: %v, want exit %d", err, exit.Usage)
	}
	if fi, _ := os.Stat(home); fi.Mode().Perm() != 0o755 {
		t.Fatalf("a foreign directory's mode was changed to %v", fi.Mode())
	}

	linked := filepath.Join(top, "linked")
	os.Symlink(loose, linked)
	other := filepath.Join(top, "other")
	os.Mkdir(other, 0o700)
	os.Chown(other, 4242, 4242)
	for p, want := range map[string]string{linked: "symbolic link", other: "owned by uid 4242"} {
		_, err := openStore(p)
		if exit.Code(err) != exit.Sandbox || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: err = %v, want exit %d naming it (%s)", p, err, exit.Sandbox, want)
		}
	}
}

// Waiting for a layer's lock ends with the context.
func TestLockWaitEndsWithContext(t *testing.T) {
	st, err := openStore(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hexID := strings.Repeat("a", 64)
	unlock, err := st.lock(context.Background(), hexID)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := st.lock(ctx, hexID); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
	unlock()
	again, err := st.lock(context.Background(), hexID)
	if err != nil {
		t.Fatal(err)
	}
	again()
}
