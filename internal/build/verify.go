package build

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/cipack/cipack/internal/creator"
	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/registry"
)

// tagState is the digest each written reference points at ("" when it
// does not exist), keyed by reference.
type tagState map[string]string

// verifyPushed checks that the registry holds what the lifecycle reported:
// the image and every tag resolve to one digest. The digest cipack prints
// and outputs is the registry's, never only the report's, which build code
// can write.
func verifyPushed(ctx context.Context, reg *registry.Client, refs []name.Reference, reported string) (string, error) {
	now, err := reg.TagDigests(ctx, refs)
	if err != nil {
		return "", exit.New(exit.Export, refs[0].String(), fmt.Errorf("verify the pushed image: %w", err),
			"the lifecycle reported success but the registry could not be asked; rerun the build")
	}
	image := refs[0].String()
	got := now[image]
	if got != reported {
		return "", exit.New(exit.Export, image,
			fmt.Errorf("the registry holds %s but the lifecycle's report says %s", orNone(got), reported),
			"the report was altered (by build code?) or the push did not land; nothing was reported as built")
	}
	var diverged []string
	for _, r := range refs[1:] {
		if d := now[r.String()]; d != got {
			diverged = append(diverged, fmt.Sprintf("%s is at %s", r, orNone(d)))
		}
	}
	if len(diverged) > 0 {
		return "", exit.New(exit.Export, image,
			fmt.Errorf("tags do not all point at this build's %s: %s", got, strings.Join(diverged, "; ")),
			"another build pushed to the same tags at the same time, or a tag write failed; rerun the build to converge")
	}
	return got, nil
}

// reportWritten logs, after a build that failed or was interrupted, which
// of its references the registry now holds at a new digest: a rerun
// converges them, and the user knows what moved meanwhile.
func reportWritten(ctx context.Context, reg *registry.Client, refs []name.Reference, before tagState, log io.Writer) {
	if before == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	now, err := reg.TagDigests(ctx, refs)
	if err != nil {
		fmt.Fprintf(log, "cipack: could not check which tags the stopped build wrote: %v\n", err)
		return
	}
	var written, kept []string
	for _, r := range refs {
		k := r.String()
		if now[k] != before[k] {
			written = append(written, fmt.Sprintf("%s (now %s)", k, orNone(now[k])))
		} else {
			kept = append(kept, k)
		}
	}
	if len(written) == 0 {
		fmt.Fprintln(log, "cipack: the build stopped before writing any tag: nothing moved")
		return
	}
	fmt.Fprintf(log, "cipack: the build stopped after writing %s; not written: %s. Rerun the build to converge the tags.\n",
		strings.Join(written, ", "), orNone(strings.Join(kept, ", ")))
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

// Check validates every value before it becomes a CI output: a value that
// could carry a newline or a workflow command never leaves cipack.
func (r *Result) Check() error {
	bad := func(what, v string) error {
		return exit.New(exit.Export, what, fmt.Errorf("refusing to output a malformed value %q", v), "this is a bug or tampering: nothing was output")
	}
	if !creator.DigestPattern.MatchString(r.Digest) {
		return bad("digest", r.Digest)
	}
	if _, err := name.NewDigest(r.ImageRef, name.StrictValidation); err != nil {
		return bad("image-ref", r.ImageRef)
	}
	for _, v := range append([]string{r.Image}, r.Tags...) {
		if _, err := name.NewTag(v); err != nil || strings.ContainsAny(v, "\r\n") {
			return bad("tags", v)
		}
	}
	return nil
}
