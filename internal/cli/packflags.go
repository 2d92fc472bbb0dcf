package cli

import (
	"strings"

	"github.com/spf13/pflag"
)

// packOnly are pack build's flags that cipack build does not take, and
// what to do instead: someone moving a pack command line into CI learns
// it from the error, not from a search.
var packOnly = map[string]string{
	"extension":                 "image extensions are not supported yet: use a builder without them",
	"cache":                     "use --cache-dir DIR (pack's format=bind) or --cache-image IMAGE (format=image)",
	"clear-cache":               "start from an empty --cache-dir, or a new --cache-image",
	"creation-time":             "the lifecycle's default applies (a fixed date, so the same build gives the same image)",
	"disable-system-buildpacks": "cipack adds no system buildpacks",
	"docker-host":               "cipack needs no Docker daemon",
	"lifecycle-image":           "pull mode runs the lifecycle cipack pins (--lifecycle-dir) for the registry phases",
	"platform":                  "cipack builds for the machine it runs on: one job per platform, then `cipack manifest`",
	"pull-policy":               "pull mode always resolves the builder by digest and reuses its verified layers",
	"buildpack-registry":        "the Buildpack Registry is not supported: name a buildpackage image with docker://",
	"trust-extra-buildpacks":    "added buildpacks always run as build code, without the registry credentials",
	"volume":                    "build code gets no host path: put what it needs in the app, or in a buildpack",
	"workspace":                 "the app is always at /workspace",
	"report-output-dir":         "use --output json (the report's image, digest and buildpacks) and --layers-dir",
	"interactive":               "cipack has no terminal UI",
	"sparse":                    "cipack exports to a registry, not to an OCI layout",
	"userns-host":               "pull mode's containers run build code without privileges or capabilities",
}

// packHint adds, to cobra's error about an unknown flag, what to use
// instead when it is one of pack's.
func packHint(err error, flags *pflag.FlagSet) string {
	msg := err.Error()
	const prefix = "unknown flag: --"
	i := strings.Index(msg, prefix)
	if i < 0 {
		return ""
	}
	name, _, _ := strings.Cut(msg[i+len(prefix):], " ")
	if why, ok := packOnly[name]; ok && flags.Lookup("buildpack") != nil {
		return "pack's --" + name + " is not a cipack flag: " + why
	}
	return ""
}
