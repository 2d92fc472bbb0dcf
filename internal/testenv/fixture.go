package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Fixture is one complete test world: lifecycle, registry, run image,
// builder directory and the cipack binary.
type Fixture struct {
	Dir          string
	Registry     *Registry
	LifecycleDir string
	Cipack       string
	RunImage     string // 127.0.0.1:PORT/cipack-test/run:v1
	BuilderDir   string // the builder's /cnb
	BuilderImage string // the same builder as an image, in pack's layout
	UID, GID     int
}

// NewFixture builds everything under dir. Call Close to stop the registry.
func NewFixture(ctx context.Context, dir string) (*Fixture, error) {
	f := &Fixture{Dir: dir}
	var err error
	if f.UID, f.GID, err = BuildUser(); err != nil {
		return nil, err
	}
	if f.LifecycleDir, err = LifecycleBinaries(ctx); err != nil {
		return nil, err
	}
	if f.Cipack, err = BuildCipack(ctx, dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "registry"), 0o755); err != nil {
		return nil, err
	}
	if f.Registry, err = StartRegistry(ctx, filepath.Join(dir, "registry")); err != nil {
		return nil, err
	}
	f.RunImage = f.Registry.Host + "/cipack-test/run:v1"
	img, err := RunImage(RunImageSpec{UID: f.UID, GID: f.GID, Version: "v1"})
	if err != nil {
		f.Close()
		return nil, err
	}
	if _, err := Push(ctx, f.RunImage, img); err != nil {
		f.Close()
		return nil, err
	}
	bps, err := ExampleBuildpacks()
	if err != nil {
		f.Close()
		return nil, err
	}
	if f.BuilderDir, err = MakeBuilder(filepath.Join(dir, "cnb"), BuilderSpec{
		LifecycleDir: f.LifecycleDir, RunImage: f.RunImage, Buildpacks: bps,
	}); err != nil {
		f.Close()
		return nil, err
	}
	f.BuilderImage = f.Registry.Host + "/cipack-test/builder:latest"
	if _, err := f.PushBuilder(ctx, f.BuilderDir, f.BuilderImage, img); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Close stops the registry.
func (f *Fixture) Close() {
	if f.Registry != nil {
		f.Registry.Stop()
	}
}

// BuildUser is the user the test builder runs buildpacks as. The lifecycle
// looks the user up in /etc/passwd of the machine it runs on, so it must
// exist on the host: nobody is on every Debian machine.
func BuildUser() (int, int, error) {
	u, err := user.Lookup("nobody")
	if err != nil {
		return 0, 0, fmt.Errorf("look up user nobody: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// Workspace copies the app at src into a fresh directory under the
// fixture, readable by the build user, and returns it with a fresh layers
// directory.
func (f *Fixture) Workspace(src, name string) (Mounts, error) {
	ws := filepath.Join(f.Dir, "ws-"+name)
	if err := copyTree(src, ws); err != nil {
		return Mounts{}, err
	}
	layers := filepath.Join(f.Dir, "layers-"+name)
	if err := os.MkdirAll(layers, 0o755); err != nil {
		return Mounts{}, err
	}
	return Mounts{CNB: f.BuilderDir, Layers: layers, Workspace: ws}, nil
}

// CipackBuild returns a command running `cipack build --path /workspace
// args...` inside the builder mounts, with the builder's CNB_USER_ID and
// CNB_GROUP_ID in its env as a builder image would set them.
func (f *Fixture) CipackBuild(ctx context.Context, m Mounts, args ...string) *exec.Cmd {
	argv := append([]string{f.Cipack, "build", "--path", "/workspace", "--source-root", "/workspace"}, args...)
	cmd := InBuilder(ctx, m, argv...)
	cmd.Env = append(os.Environ(), "CNB_USER_ID="+strconv.Itoa(f.UID), "CNB_GROUP_ID="+strconv.Itoa(f.GID))
	return cmd
}

// PushBuilder pushes the builder laid out in cnbDir as an image on base.
func (f *Fixture) PushBuilder(ctx context.Context, cnbDir, ref string, base v1.Image) (v1.Hash, error) {
	img, err := BuilderImage(base, cnbDir, f.UID, f.GID)
	if err != nil {
		return v1.Hash{}, err
	}
	return Push(ctx, ref, img)
}
