package lifecycle

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cipack/cipack/internal/exit"
)

// SupportedAPIs are the platform APIs cipack can plan for, oldest first.
// 0.12 brought run.toml and the rebaser's run-image rules cipack relies on.
var SupportedAPIs = []string{"0.12", "0.13", "0.14", "0.15"}

// NewestAPI is the newest platform API cipack speaks.
func NewestAPI() string { return SupportedAPIs[len(SupportedAPIs)-1] }

// Auto asks Negotiate for the highest API both sides support.
const Auto = "auto"

// ParseAPI checks that v looks like a platform API ("0.14") and returns
// its major and minor numbers.
func ParseAPI(v string) (major, minor int, err error) {
	a, b, ok := strings.Cut(v, ".")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not a platform API version like 0.14", v)
	}
	if major, err = strconv.Atoi(a); err != nil {
		return 0, 0, fmt.Errorf("%q is not a platform API version like 0.14", v)
	}
	if minor, err = strconv.Atoi(b); err != nil {
		return 0, 0, fmt.Errorf("%q is not a platform API version like 0.14", v)
	}
	return major, minor, nil
}

// CompareAPI orders two API versions like strings.Compare.
func CompareAPI(a, b string) int {
	am, an, _ := ParseAPI(a)
	bm, bn, _ := ParseAPI(b)
	if am != bm {
		return am - bm
	}
	return an - bn
}

// AtLeast reports whether api >= min.
func AtLeast(api, min string) bool { return CompareAPI(api, min) >= 0 }

// MinLifecycle is the oldest lifecycle that speaks cipack's lowest platform
// API (0.12 arrived in lifecycle v0.17.0): the version hints name it.
const MinLifecycle = "v0.17.0"

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
	if _, _, err := ParseAPI(requested); err != nil {
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

// Candidates returns the platform APIs to try, newest first. When the
// builder declares its APIs (lifecycle.toml) the choice is made here, up
// front; otherwise the lifecycle itself is asked by running it (see
// Runner.RunNegotiated), which costs nothing extra when the newest API is
// supported, the common case.
func Candidates(requested string, b *Builder) ([]string, error) {
	if len(b.DeclaredAPIs) > 0 {
		api, err := Negotiate(requested, b.DeclaredAPIs)
		if err != nil {
			return nil, err
		}
		return []string{api}, nil
	}
	if requested != "" && requested != Auto {
		if _, err := Negotiate(requested, []string{requested}); err != nil {
			return nil, err
		}
		return []string{requested}, nil
	}
	out := slices.Clone(SupportedAPIs)
	slices.SortFunc(out, func(a, b string) int { return CompareAPI(b, a) })
	return out, nil
}
