// Command demo is the main job of the README's quick start: it starts a
// registry on 127.0.0.1, builds the bundled example app (examples/app)
// with `cipack build` inside a stand-in for the builder image, runs the
// built image without Docker and prints what the app prints.
//
//	go run ./examples/demo
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cipack/cipack/internal/testenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) (err error) {
	// The builder stand-in's mount points go again after the demo.
	before := testenv.RootEntries()
	defer func() {
		if cerr := testenv.RemoveMountPoints(before); cerr != nil && err == nil {
			err = cerr
		}
	}()
	dir, err := os.MkdirTemp("", "cipack-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	step("preparing lifecycle " + testenv.LifecycleVersion() + ", registry, run image and builder")
	f, err := testenv.NewFixture(ctx, dir)
	if err != nil {
		return err
	}
	defer f.Close()
	root, err := testenv.ModuleRoot()
	if err != nil {
		return err
	}
	m, err := f.Workspace(filepath.Join(root, "examples", "app"), "demo")
	if err != nil {
		return err
	}
	image := f.Registry.Host + "/demo/app:latest"
	step("cipack build --image " + image + " --env GREETING=hello=world --process-type web")
	start := time.Now()
	cmd := f.CipackBuild(ctx, m, "--image", image, "--env", "GREETING=hello=world", "--process-type", "web",
		"--cache-dir", filepath.Join(dir, "cache"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("cipack build: %w", err)
	}
	ref := strings.TrimSpace(string(out))
	step(fmt.Sprintf("built %s in %s", ref, time.Since(start).Round(time.Millisecond)))
	step("running the image's web process")
	printed, err := testenv.RunImageProcess(ctx, ref, "web", filepath.Join(dir, "rootfs"))
	if err != nil {
		return err
	}
	fmt.Print(printed)
	return nil
}

func step(msg string) { fmt.Fprintf(os.Stderr, "\033[1m==> %s\033[0m\n", msg) }
