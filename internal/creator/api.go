package creator

import (
	"slices"

	"github.com/cipack/cipack/internal/cnb"
)

// Candidates returns the platform APIs to try, newest first. When the
// builder declares its APIs (lifecycle.toml) the choice is made here, up
// front; otherwise the lifecycle itself is asked by running it (see
// Runner.RunNegotiated), which costs nothing extra when the newest API is
// supported, the common case.
func Candidates(requested string, b *Builder) ([]string, error) {
	if len(b.DeclaredAPIs) > 0 {
		api, err := cnb.Negotiate(requested, b.DeclaredAPIs)
		if err != nil {
			return nil, err
		}
		return []string{api}, nil
	}
	if requested != "" && requested != cnb.Auto {
		if _, err := cnb.Negotiate(requested, []string{requested}); err != nil {
			return nil, err
		}
		return []string{requested}, nil
	}
	out := slices.Clone(cnb.SupportedAPIs)
	slices.SortFunc(out, func(a, b string) int { return cnb.CompareAPI(b, a) })
	return out, nil
}
