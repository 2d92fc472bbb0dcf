package cnb

import (
	"fmt"
	"slices"

	"github.com/buildpacks/lifecycle/api"

	"github.com/cipack/cipack/internal/exit"
)

// SupportedAPIs are the platform APIs cipack can plan for, oldest first.
// 0.12 brought run.toml and the rebaser's run-image rules cipack relies on.
var SupportedAPIs = []string{"0.12", "0.13", "0.14", "0.15"}

// NewestAPI is the newest platform API cipack speaks.
func NewestAPI() string { return SupportedAPIs[len(SupportedAPIs)-1] }

// Auto asks Negotiate for the highest API both sides support.
const Auto = "auto"

// MinLifecycle is the oldest lifecycle that speaks cipack's lowest platform
// API (0.12 arrived in lifecycle v0.17.0): the version hints name it.
const MinLifecycle = "v0.17.0"

// ParseAPI checks that v is a platform API version ("0.14"), as the
// lifecycle parses one.
func ParseAPI(v string) (*api.Version, error) {
	parsed, err := api.NewVersion(v)
	if err != nil {
		return nil, fmt.Errorf("%q is not a platform API version like 0.14", v)
	}
	return parsed, nil
}

// CompareAPI orders two API versions like strings.Compare; an unparsable
// one sorts first.
func CompareAPI(a, b string) int {
	x, errX := api.NewVersion(a)
	y, errY := api.NewVersion(b)
	switch {
	case errX != nil && errY != nil:
		return 0
	case errX != nil:
		return -1
	case errY != nil:
		return 1
	}
	return x.Compare(y)
}

// AtLeast reports whether api >= min.
func AtLeast(v, min string) bool { return CompareAPI(v, min) >= 0 }

// Negotiate picks the platform API: the requested one if both cipack and
// the builder support it, else (for Auto) the highest common one. A pure
// function: builderAPIs comes from lifecycle.toml, the builder label or a
// probe.
func Negotiate(requested string, builderAPIs []string) (string, error) {
	common := []string{}
	for _, a := range SupportedAPIs {
		if slices.Contains(builderAPIs, a) {
			common = append(common, a)
		}
	}
	if requested == "" || requested == Auto {
		if len(common) == 0 {
			return "", exit.New(exit.Builder, "platform API",
				fmt.Errorf("the builder's lifecycle supports %v, cipack supports %v: none in common", builderAPIs, SupportedAPIs),
				"use a builder with lifecycle "+MinLifecycle+" or newer")
		}
		slices.SortFunc(common, CompareAPI)
		return common[len(common)-1], nil
	}
	if _, err := ParseAPI(requested); err != nil {
		return "", exit.Usagef("--platform-api", "give a version such as 0.14, or auto", "%v", err)
	}
	if !slices.Contains(SupportedAPIs, requested) {
		return "", exit.Usagef("--platform-api", fmt.Sprintf("choose one of %v, or auto", SupportedAPIs),
			"cipack does not support platform API %s", requested)
	}
	if !slices.Contains(builderAPIs, requested) {
		return "", exit.New(exit.Builder, "--platform-api",
			fmt.Errorf("the builder's lifecycle does not support platform API %s (it supports %v)", requested, builderAPIs),
			fmt.Sprintf("choose one of %v, or auto", common))
	}
	return requested, nil
}
