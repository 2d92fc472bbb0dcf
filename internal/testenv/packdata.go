package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// PackModule is pack's Go module, whose acceptance tests' buildpacks the
// pack-parity tests build with.
const PackModule = "github.com/buildpacks/pack"

// PackVersion is the pack version used when cipack's go.mod does not
// require pack itself.
const PackVersion = "v0.40.0"

// PackTestdata returns pack's acceptance/testdata/mock_buildpacks in the Go
// module cache, for the pack version cipack's go.mod selects (PackVersion
// when it selects none), downloading the module through the Go module
// proxy if it is not cached yet. These are third-party test buildpacks
// (not-in-builder-buildpack, meta-buildpack, simple-layers-buildpack,
// read-env-buildpack, ...), written for bash (#!/usr/bin/env bash). The
// module cache is read-only: copy out what is to be changed or built on.
func PackTestdata(ctx context.Context) (string, error) {
	version, err := ModuleVersion(ctx, "", PackModule)
	if err != nil {
		version = PackVersion
	}
	// Outside any module, so that go.mod and go.sum stay as they are.
	tmp, err := os.MkdirTemp("", "cipack-packdata-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", PackModule+"@"+version)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GO111MODULE=on", "GOWORK=off", "GOFLAGS=")
	out, err := cmd.Output()
	var mod struct {
		Dir   string
		Error string
	}
	if jerr := json.Unmarshal(out, &mod); jerr != nil || err != nil || mod.Error != "" {
		msg := mod.Error
		if ee, ok := err.(*exec.ExitError); ok && msg == "" {
			msg = string(ee.Stderr)
		}
		return "", fmt.Errorf("go mod download %s@%s: %v %s", PackModule, version, err, msg)
	}
	dir := filepath.Join(mod.Dir, "acceptance", "testdata", "mock_buildpacks")
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("%s@%s has no acceptance/testdata/mock_buildpacks (%v)", PackModule, version, err)
	}
	return dir, nil
}

// CopyBuildpack copies the buildpack directory src (one of PackTestdata's,
// read-only in the module cache, its scripts not executable there) to dst
// with the modes pack gives a buildpack it packages: directories and the
// files under bin/ 0755, other files 0644.
func CopyBuildpack(src, dst string) error {
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			return os.Chmod(target, 0o755)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file", p)
		}
		mode := os.FileMode(0o644)
		if filepath.Base(filepath.Dir(rel)) == "bin" {
			mode = 0o755
		}
		return copyFile(p, target, mode)
	})
}
