package testenv

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BusyboxPath is Debian's busybox-static binary; `make setup` installs it.
const BusyboxPath = "/bin/busybox"

// BashPath is Debian's bash-static binary; `make setup` installs it.
const BashPath = "/bin/bash-static"

// StackID is the base/stack id of the test run images.
const StackID = "io.cipack.test.busybox"

// RunImageSpec describes a test run image.
type RunImageSpec struct {
	UID, GID int
	// Version is written to /etc/cipack-base-version, so tests can tell
	// which base an app image runs on.
	Version string
	// StackID defaults to StackID; another value makes an incompatible base.
	StackID string
	// Bash adds bash-static as /bin/bash, /usr/bin/env (busybox) and the
	// busybox applets bash scripts call that the base lacks (ln), for
	// buildpacks written as `#!/usr/bin/env bash` such as pack's own
	// acceptance-test buildpacks. Unset, the image is as before.
	Bash bool
}

// Ownership is who owns what a tar entry creates.
type Ownership struct{ UID, GID int }

// TarFile is one entry of a layer made in memory.
type TarFile struct {
	Name     string
	Mode     int64
	Body     []byte
	Linkname string // symlink target
	Dir      bool
	Owner    Ownership
}

// LayerFromFiles makes an OCI layer from entries, with a fixed mtime so
// the same files always give the same digest.
func LayerFromFiles(files []TarFile) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(1980, 1, 1, 0, 0, 1, 0, time.UTC)
	for _, f := range files {
		h := &tar.Header{Name: f.Name, Mode: f.Mode, ModTime: mtime, Uid: f.Owner.UID, Gid: f.Owner.GID, Format: tar.FormatPAX}
		switch {
		case f.Dir:
			h.Typeflag = tar.TypeDir
		case f.Linkname != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.Linkname
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Body); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.BestSpeed))
}

// RunImage builds a tiny run image: busybox-static as /bin/sh and friends,
// an /etc/passwd naming the CNB user, CNB labels and env.
func RunImage(spec RunImageSpec) (v1.Image, error) {
	bb, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (run `make setup`, it installs busybox-static)", BusyboxPath, err)
	}
	stack := spec.StackID
	if stack == "" {
		stack = StackID
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\ncnb:x:%d:%d:cnb:/home/cnb:/bin/sh\n", spec.UID, spec.GID)
	group := fmt.Sprintf("root:x:0:\ncnb:x:%d:\n", spec.GID)
	files := []TarFile{
		{Name: "bin/", Dir: true, Mode: 0o755},
		{Name: "bin/busybox", Mode: 0o755, Body: bb},
		{Name: "etc/", Dir: true, Mode: 0o755},
		{Name: "etc/passwd", Mode: 0o644, Body: []byte(passwd)},
		{Name: "etc/group", Mode: 0o644, Body: []byte(group)},
		{Name: "etc/cipack-base-version", Mode: 0o644, Body: []byte(spec.Version + "\n")},
		{Name: "home/", Dir: true, Mode: 0o755},
		{Name: "home/cnb/", Dir: true, Mode: 0o755, Owner: Ownership{spec.UID, spec.GID}},
		{Name: "tmp/", Dir: true, Mode: 0o1777},
	}
	// Enough of a userland for a CI job container too (act keeps it alive
	// with tail; the action's setup script uses the rest).
	for _, applet := range []string{"sh", "cat", "echo", "ls", "env", "id", "tail", "mkdir", "rm", "cp", "mv", "chmod",
		"sleep", "uname", "expr", "dirname", "grep", "sha256sum", "pwd", "true", "false", "test", "["} {
		files = append(files, TarFile{Name: "bin/" + applet, Linkname: "busybox"})
	}
	if spec.Bash {
		bash, err := os.ReadFile(BashPath)
		if err != nil {
			return nil, fmt.Errorf("%s: %w (run `make setup`, it installs bash-static)", BashPath, err)
		}
		files = append(files,
			TarFile{Name: "bin/bash", Mode: 0o755, Body: bash},
			TarFile{Name: "bin/ln", Linkname: "busybox"},
			TarFile{Name: "usr/", Dir: true, Mode: 0o755},
			TarFile{Name: "usr/bin/", Dir: true, Mode: 0o755},
			TarFile{Name: "usr/bin/env", Linkname: "/bin/busybox"})
	}
	layer, err := LayerFromFiles(files)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: "cipack testenv run image " + spec.Version}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.User = fmt.Sprintf("%d:%d", spec.UID, spec.GID)
	cf.Config.Env = []string{"PATH=/bin", "CNB_USER_ID=" + strconv.Itoa(spec.UID), "CNB_GROUP_ID=" + strconv.Itoa(spec.GID)}
	cf.Config.Labels = map[string]string{
		"io.buildpacks.base.id":          stack,
		"io.buildpacks.stack.id":         stack,
		"io.buildpacks.base.distro.name": "busybox",
	}
	return mutate.ConfigFile(img, cf)
}

// Push writes img to ref.
func Push(ctx context.Context, ref string, img v1.Image) (v1.Hash, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", ref, err)
	}
	return img.Digest()
}
