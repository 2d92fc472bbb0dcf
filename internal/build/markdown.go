package build

import (
	"fmt"
	"strings"
	"time"
)

// Markdown renders the result as a job summary.
func (r *Result) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### cipack build\n\n| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| Image | `%s` |\n| Digest | `%s` |\n", r.Image, r.Digest)
	if len(r.Tags) > 0 {
		fmt.Fprintf(&b, "| Tags | %s |\n", "`"+strings.Join(r.Tags, "`, `")+"`")
	}
	fmt.Fprintf(&b, "| Run image | `%s` |\n| Platform API | %s |\n| Duration | %s |\n", r.RunImage, r.PlatformAPI, r.Duration.Round(time.Millisecond))
	if len(r.Buildpacks) > 0 {
		b.WriteString("\n| Buildpack | Version |\n|---|---|\n")
		for _, bp := range r.Buildpacks {
			fmt.Fprintf(&b, "| %s | %s |\n", bp.ID, bp.Version)
		}
	}
	if len(r.Phases) > 0 {
		b.WriteString("\n| Phase | Time |\n|---|---|\n")
		for _, p := range r.Phases {
			fmt.Fprintf(&b, "| %s | %s |\n", p.Phase, p.Duration.Round(time.Millisecond))
		}
	}
	return b.String()
}
