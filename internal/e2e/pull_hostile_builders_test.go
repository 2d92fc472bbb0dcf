package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cipack/cipack/internal/testenv"
)

// The builder images TestHostileBuilder pulls, and the raw layers they
// are made of.

// phWorld is what the rows share: the canary dir, and builder images each
// made once, on first use.
type phWorld struct {
	canary                             string
	base, symlinks, suid, devices, big phOnce
	probeOnce                          phOnce // the suidprobe binary's path
}

type phOnce struct {
	once sync.Once
	val  string
	err  error
}

func (o *phOnce) get(t *testing.T, what string, make func() (string, error)) string {
	t.Helper()
	o.once.Do(func() { o.val, o.err = make() })
	if o.err != nil {
		t.Fatalf("make %s: %v", what, o.err)
	}
	return o.val
}

// baseBuilder is the test builder (the example buildpacks) plus the
// pullhostile buildpack (testdata/pullhostile/buildpack).
func (w *phWorld) baseBuilder(t *testing.T) string {
	return w.base.get(t, "the pullhostile builder", func() (string, error) {
		bps, err := testenv.ExampleBuildpacks()
		if err != nil {
			return "", err
		}
		abs, err := filepath.Abs(filepath.Join("testdata", "pullhostile", "buildpack"))
		if err != nil {
			return "", err
		}
		bps = append(bps, testenv.Buildpack{ID: "cipack-test/pullhostile", Version: "0.0.1", Dir: abs})
		cnb, err := testenv.MakeBuilder(filepath.Join(fx.Dir, "pullhostile-cnb"), testenv.BuilderSpec{
			LifecycleDir: fx.LifecycleDir, RunImage: fx.RunImage, Buildpacks: bps,
		})
		if err != nil {
			return "", err
		}
		base, err := testenv.RunImage(testenv.RunImageSpec{UID: fx.UID, GID: fx.GID, Version: "v1"})
		if err != nil {
			return "", err
		}
		ref := fx.Registry.Host + "/pullhostile/builder:base"
		_, err = fx.PushBuilder(context.Background(), cnb, ref, base)
		return ref, err
	})
}

// symlinkTargets maps the builder paths row 1 makes symlinks to their
// targets under the canary dir's sub (where makeCanary made them for
// "existing"; nothing is there for "").
func (w *phWorld) symlinkTargets(sub string, withDev bool) map[string]string {
	dir := filepath.Join(w.canary, sub)
	m := map[string]string{
		"workspace":       filepath.Join(dir, "ws"),
		"layers":          filepath.Join(dir, "layers"),
		"platform":        filepath.Join(dir, "platform"),
		"tmp":             filepath.Join(dir, "tmp"),
		"etc/resolv.conf": filepath.Join(dir, "resolv.conf"),
	}
	if withDev {
		m["dev"] = filepath.Join(dir, "dev")
	}
	return m
}

func (w *phWorld) symlinkBuilder(t *testing.T) string {
	return w.symlinks.get(t, "the symlinked-mount-targets builder", func() (string, error) {
		return w.makeSymlinkBuilder(t, "symlinks", "", true)
	})
}

func (w *phWorld) symlinkBuilderTo(t *testing.T, tag, sub string, withDev bool) string {
	ref, err := w.makeSymlinkBuilder(t, tag, sub, withDev)
	if err != nil {
		t.Fatalf("make the %s builder: %v", tag, err)
	}
	return ref
}

func (w *phWorld) makeSymlinkBuilder(t *testing.T, tag, sub string, withDev bool) (string, error) {
	base := w.baseBuilder(t)
	files := []testenv.TarFile{{Name: "etc/", Dir: true, Mode: 0o755}}
	targets := w.symlinkTargets(sub, withDev)
	names := make([]string, 0, len(targets))
	for n := range targets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		files = append(files, testenv.TarFile{Name: n, Linkname: targets[n]})
	}
	l, err := testenv.LayerFromFiles(files)
	if err != nil {
		return "", err
	}
	ref, _, err := w.appendTo(base, tag, l)
	return ref, err
}

func (w *phWorld) suidBuilder(t *testing.T) string {
	base := w.baseBuilder(t)
	probe := w.probeOnce.get(t, "the suidprobe binary", func() (string, error) {
		dir, err := os.MkdirTemp(fx.Dir, "pullhostile-suidprobe-")
		if err != nil {
			return "", err
		}
		out := filepath.Join(dir, "suidprobe")
		cmd := exec.Command("go", "build", "-o", out, "./testdata/pullhostile/suidprobe")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build suidprobe: %v\n%s", err, b)
		}
		return out, nil
	})
	return w.suid.get(t, "the setuid builder", func() (string, error) {
		bb, err := os.ReadFile(testenv.BusyboxPath)
		if err != nil {
			return "", err
		}
		pb, err := os.ReadFile(probe)
		if err != nil {
			return "", err
		}
		l, err := rawLayer(
			phEntry{hdr: tar.Header{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755}},
			phEntry{hdr: tar.Header{Name: "usr/bin/", Typeflag: tar.TypeDir, Mode: 0o755}},
			phEntry{hdr: tar.Header{Name: "usr/bin/suidbox", Typeflag: tar.TypeReg, Mode: 0o4755}, body: bb},
			phEntry{hdr: tar.Header{Name: "usr/bin/suidprobe", Typeflag: tar.TypeReg, Mode: 0o4755}, body: pb},
		)
		if err != nil {
			return "", err
		}
		ref, _, err := w.appendTo(base, "suid", l)
		return ref, err
	})
}

func (w *phWorld) deviceBuilder(t *testing.T) string {
	base := w.baseBuilder(t)
	return w.devices.get(t, "the device-node builder", func() (string, error) {
		l, err := rawLayer(
			phEntry{hdr: tar.Header{Name: "opt/", Typeflag: tar.TypeDir, Mode: 0o755}},
			phEntry{hdr: tar.Header{Name: "opt/mem", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 1}},
			phEntry{hdr: tar.Header{Name: "opt/sda", Typeflag: tar.TypeBlock, Mode: 0o666, Devmajor: 8, Devminor: 0}},
		)
		if err != nil {
			return "", err
		}
		ref, _, err := w.appendTo(base, "devices", l)
		return ref, err
	})
}

// bigBuilder is the test builder plus 20 layers of 8 MiB of random bytes:
// unpacking it takes long enough to be caught half-way.
func (w *phWorld) bigBuilder(t *testing.T) string {
	return w.big.get(t, "the big builder", func() (string, error) {
		var layers []v1.Layer
		buf := make([]byte, 8<<20)
		for i := 0; i < 20; i++ {
			var seed [32]byte
			seed[0], seed[1] = byte(i), 0x9c
			_, _ = rand.NewChaCha8(seed).Read(buf)
			l, err := rawLayer(
				phEntry{hdr: tar.Header{Name: "big/", Typeflag: tar.TypeDir, Mode: 0o755}},
				phEntry{hdr: tar.Header{Name: fmt.Sprintf("big/%02d.bin", i), Typeflag: tar.TypeReg, Mode: 0o644}, body: buf},
			)
			if err != nil {
				return "", err
			}
			layers = append(layers, l)
		}
		ref, _, err := w.appendTo(fx.BuilderImage, "big", layers...)
		return ref, err
	})
}

// appendBuilder pushes from plus layer as the builder :tag and returns its
// reference and the diffID hex of the layer (its directory's name in the
// store), or fails t.
func (w *phWorld) appendBuilder(t *testing.T, from, tag string, layer v1.Layer) (string, string) {
	t.Helper()
	ref, diffID, err := w.appendTo(from, tag, layer)
	if err != nil {
		t.Fatalf("make the %s builder: %v", tag, err)
	}
	return ref, diffID
}

func (w *phWorld) appendTo(from, tag string, layers ...v1.Layer) (string, string, error) {
	r, err := name.ParseReference(from)
	if err != nil {
		return "", "", err
	}
	img, err := remote.Image(r)
	if err != nil {
		return "", "", err
	}
	if img, err = mutate.AppendLayers(img, layers...); err != nil {
		return "", "", err
	}
	ref := fx.Registry.Host + "/pullhostile/builder:" + tag
	if _, err := testenv.Push(context.Background(), ref, img); err != nil {
		return "", "", err
	}
	d, err := layers[len(layers)-1].DiffID()
	if err != nil {
		return "", "", err
	}
	return ref, d.Hex, nil
}

// ---- raw layers ----

// phEntry is one raw tar entry: any type, mode bits, link names.
type phEntry struct {
	hdr  tar.Header
	body []byte
}

var phMtime = time.Date(1980, 1, 1, 0, 0, 1, 0, time.UTC)

// rawLayer makes an OCI layer (gzip, types.OCILayer, as
// testenv.LayerFromFiles) of the entries as given: devices, hard links,
// whiteouts, setuid bits, names with "..".
func rawLayer(entries ...phEntry) (v1.Layer, error) {
	return gzipLayer(func(tw *tar.Writer) error {
		for _, e := range entries {
			h := e.hdr
			h.ModTime = phMtime
			if h.Typeflag == tar.TypeReg {
				h.Size = int64(len(e.body))
			}
			if err := tw.WriteHeader(&h); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			if _, err := tw.Write(e.body); err != nil {
				return err
			}
		}
		return nil
	})
}

// bombLayer is a layer of n identical empty directory entries: a blob of a
// few MiB that is n tar headers long.
func bombLayer(n int) (v1.Layer, error) {
	return gzipLayer(func(tw *tar.Writer) error {
		h := tar.Header{Name: "bomb/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: phMtime, Format: tar.FormatUSTAR}
		for i := 0; i < n; i++ {
			hh := h
			if err := tw.WriteHeader(&hh); err != nil {
				return err
			}
		}
		return nil
	})
}

// gzipLayer compresses the tar stream write makes once, in memory.
func gzipLayer(write func(*tar.Writer) error) (v1.Layer, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	if err := write(tw); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// ---- running cipack ----
