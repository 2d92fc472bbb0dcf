package creator

import (
	"fmt"
	"regexp"

	"github.com/BurntSushi/toml"
	"github.com/buildpacks/lifecycle/buildpack"
	"github.com/buildpacks/lifecycle/platform/files"

	"github.com/cipack/cipack/internal/safefs"
)

// maxMetadataFile bounds the lifecycle files cipack reads back: they live
// in the layers dir, which build code can write.
const maxMetadataFile = 1 << 20

// DigestPattern is what a digest cipack reports must look like.
var DigestPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// ReadReport reads the exporter's report.toml into the lifecycle's own
// type. Build code can write the layers dir, so the file is read as
// untrusted: regular file only, no symlink, bounded, and its digest must
// be well formed. Callers still check the digest against the registry.
func ReadReport(path string) (files.Report, error) {
	var r files.Report
	b, err := safefs.ReadRegular(path, maxMetadataFile)
	if err != nil {
		return r, fmt.Errorf("read report: %w", err)
	}
	if _, err := toml.Decode(string(b), &r); err != nil {
		return r, fmt.Errorf("read report %s: %w", path, err)
	}
	if r.Image.Digest == "" {
		return r, fmt.Errorf("report %s names no image digest", path)
	}
	if !DigestPattern.MatchString(r.Image.Digest) {
		return r, fmt.Errorf("report %s names a malformed digest", path)
	}
	return r, nil
}

// ReadGroup reads group.toml (the buildpacks that passed detection) with
// the same care as the report.
func ReadGroup(path string) (buildpack.Group, error) {
	var g buildpack.Group
	b, err := safefs.ReadRegular(path, maxMetadataFile)
	if err != nil {
		return g, err
	}
	_, err = toml.Decode(string(b), &g)
	return g, err
}
