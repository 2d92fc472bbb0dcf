package lifecycle

import (
	"fmt"

	"github.com/cipack/cipack/internal/exit"
)

type codeInfo struct {
	phase string
	exit  int
	hint  string
}

// lifecycleCodes maps the lifecycle's exit codes (platform/exit.go, v0.21.0)
// to the phase that failed, cipack's exit code and what to fix.
var lifecycleCodes = map[int]codeInfo{
	11:  {"platform API", exit.Lifecycle, "the lifecycle does not support the platform API cipack asked for: pass --platform-api auto or a version the builder lists"},
	12:  {"buildpack API", exit.Lifecycle, "a buildpack declares an API this lifecycle does not support: update the builder or the buildpack"},
	20:  {"detect", exit.Detect, "no buildpack group detected this app: check --path points at the app and that the builder has a buildpack for it"},
	21:  {"detect", exit.Detect, "no buildpack group detected this app and a detector errored: read the detect output above"},
	22:  {"detect", exit.Detect, "detection failed: read the detect output above"},
	32:  {"analyze", exit.Lifecycle, "analyzing the previous image or cache failed: check --previous-image/--cache-image and registry access"},
	42:  {"restore", exit.Lifecycle, "restoring cached layers failed: check --cache-image/--cache-dir, or clear the cache"},
	51:  {"build", exit.Build, "a buildpack's bin/build failed: read the build output above and fix the app or its build env"},
	52:  {"build", exit.Build, "the build phase failed: read the build output above"},
	62:  {"export", exit.Export, "exporting the image failed: check that the target can be pushed and the run image read"},
	72:  {"rebase", exit.Lifecycle, "rebasing failed: read the rebaser output above"},
	82:  {"launch", exit.Lifecycle, "launching the process failed"},
	91:  {"generate", exit.Builder, "an image extension's bin/generate failed"},
	92:  {"generate", exit.Builder, "the generate phase failed"},
	102: {"extend", exit.Builder, "extending the base image failed"},
}

// ExitError turns the exit code of a lifecycle binary into an *exit.Error
// naming the phase and what to fix. Code 0 gives nil.
func ExitError(binary string, code int) error {
	if code == 0 {
		return nil
	}
	info, ok := lifecycleCodes[code]
	if !ok {
		return exit.New(exit.Lifecycle, binary, fmt.Errorf("lifecycle exited with code %d", code), "read the lifecycle output above")
	}
	return exit.New(info.exit, info.phase+" phase", fmt.Errorf("%s exited with code %d", binary, code), info.hint)
}
