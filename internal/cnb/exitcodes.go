package cnb

import (
	"fmt"

	"github.com/buildpacks/lifecycle/cmd"
	"github.com/buildpacks/lifecycle/platform"

	"github.com/cipack/cipack/internal/exit"
)

type codeInfo struct {
	phase string
	exit  int
	hint  string
}

// codeOf is the exit code the lifecycle gives an error type (its own
// table, platform.DefaultExiter).
func codeOf(e platform.LifecycleExitError) int { return (&platform.DefaultExiter{}).CodeFor(e) }

// lifecycleCodes maps the lifecycle's exit codes, keyed on its own
// constants, to the phase that failed, cipack's exit code and what to fix.
var lifecycleCodes = map[int]codeInfo{
	cmd.CodeForIncompatiblePlatformAPI:        {"platform API", exit.Lifecycle, "the lifecycle does not support the platform API cipack asked for: pass --platform-api auto or a version the builder lists"},
	cmd.CodeForIncompatibleBuildpackAPI:       {"buildpack API", exit.Lifecycle, "a buildpack declares an API this lifecycle does not support: update the builder or the buildpack"},
	codeOf(platform.FailedDetect):             {"detect", exit.Detect, "no buildpack group detected this app: check --path points at the app and that the builder has a buildpack for it"},
	codeOf(platform.FailedDetectWithErrors):   {"detect", exit.Detect, "no buildpack group detected this app and a detector errored: read the detect output above"},
	codeOf(platform.DetectError):              {"detect", exit.Detect, "detection failed: read the detect output above"},
	codeOf(platform.AnalyzeError):             {"analyze", exit.Lifecycle, "analyzing the previous image or cache failed: check --previous-image/--cache-image and registry access"},
	codeOf(platform.RestoreError):             {"restore", exit.Lifecycle, "restoring cached layers failed: check --cache-image/--cache-dir, or clear the cache"},
	codeOf(platform.FailedBuildWithErrors):    {"build", exit.Build, "a buildpack's bin/build failed: read the build output above and fix the app or its build env"},
	codeOf(platform.BuildError):               {"build", exit.Build, "the build phase failed: read the build output above"},
	codeOf(platform.ExportError):              {"export", exit.Export, "exporting the image failed: check that the target can be pushed and the run image read"},
	codeOf(platform.RebaseError):              {"rebase", exit.Lifecycle, "rebasing failed: read the rebaser output above"},
	codeOf(platform.LaunchError):              {"launch", exit.Lifecycle, "launching the process failed"},
	codeOf(platform.FailedGenerateWithErrors): {"generate", exit.Builder, "an image extension's bin/generate failed"},
	codeOf(platform.GenerateError):            {"generate", exit.Builder, "the generate phase failed"},
	codeOf(platform.ExtendError):              {"extend", exit.Builder, "extending the base image failed"},
}

// codeGoPanic is how a Go program exits on a panic; the lifecycle's own
// table never uses it.
const codeGoPanic = 2

// ExitError turns the exit code of a lifecycle binary into an *exit.Error
// naming the phase and what to fix. Code 0 gives nil.
func ExitError(binary string, code int) error {
	if code == 0 {
		return nil
	}
	if code == codeGoPanic {
		return exit.New(exit.Lifecycle, binary, fmt.Errorf("the lifecycle crashed (exit %d, a Go runtime panic)", code),
			"nothing was tagged; it met content it could not handle, most likely what a buildpack left in the layers dir: read the panic above")
	}
	info, ok := lifecycleCodes[code]
	if !ok {
		return exit.New(exit.Lifecycle, binary, fmt.Errorf("lifecycle exited with code %d", code), "read the lifecycle output above")
	}
	return exit.New(info.exit, info.phase+" phase", fmt.Errorf("%s exited with code %d", binary, code), info.hint)
}
