package lifecycle

import (
	"fmt"

	"github.com/BurntSushi/toml"
	"github.com/buildpacks/lifecycle/platform/files"
)

// ReadReport reads the exporter's report.toml into the lifecycle's own type.
func ReadReport(path string) (files.Report, error) {
	var r files.Report
	if _, err := toml.DecodeFile(path, &r); err != nil {
		return r, fmt.Errorf("read report %s: %w", path, err)
	}
	if r.Image.Digest == "" {
		return r, fmt.Errorf("report %s names no image digest", path)
	}
	return r, nil
}

type nopLogger struct{}

func (nopLogger) Debug(string)          {}
func (nopLogger) Debugf(string, ...any) {}
func (nopLogger) Info(string)           {}
func (nopLogger) Infof(string, ...any)  {}
func (nopLogger) Warn(string)           {}
func (nopLogger) Warnf(string, ...any)  {}
func (nopLogger) Error(string)          {}
func (nopLogger) Errorf(string, ...any) {}
