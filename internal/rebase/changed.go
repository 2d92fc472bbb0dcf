package rebase

import (
	"github.com/google/go-containerregistry/pkg/name"
)

// ReasonNotAffected is an image a --run-image-changed sweep read and
// found on another run image: nothing else of it is read.
const ReasonNotAffected = "NOT_AFFECTED"

// RunImages says which run image each image used at the last sweep
// (its report), so a sweep for a pushed run image reads only the images
// on it.
type RunImages map[string]string

// RunImagesOf indexes a report by image.
func RunImagesOf(r Report) RunImages {
	idx := RunImages{}
	for _, o := range r.Images {
		if o.RunImage != "" {
			idx[o.Image] = o.RunImage
		}
	}
	return idx
}

// SameImage reports whether two references name the same image: the
// same repository and, when both name a tag, the same tag (a digest
// reference stands for its repository; no tag means latest).
func SameImage(a, b string) bool {
	ra, err1 := name.ParseReference(a)
	rb, err2 := name.ParseReference(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	if ra.Context().Name() != rb.Context().Name() {
		return false
	}
	ta, okA := ra.(name.Tag)
	tb, okB := rb.(name.Tag)
	return !okA || !okB || ta.TagStr() == tb.TagStr()
}

func anySame(ref string, changed []string) bool {
	for _, c := range changed {
		if SameImage(ref, c) {
			return true
		}
	}
	return false
}

// Affected keeps the targets a push of the changed run images may
// affect, reading nothing: a target whose fleet entry names its run
// image (or mirrors) is decided by them; else by the run image the last
// sweep recorded for it; a target known by neither is kept (the sweep
// reads it to find out, and reports NOT_AFFECTED if it is on another).
// It also returns how many were kept for want of knowing.
func Affected(targets []Target, changed []string, last RunImages) ([]Target, int) {
	var out []Target
	unknown := 0
	for _, t := range targets {
		known := t.RunImage
		if known == "" {
			known = last[t.Image]
		}
		switch {
		case known == "":
			unknown++
			out = append(out, t)
		case anySame(known, changed):
			out = append(out, t)
		default:
			for _, m := range t.RunImageMirrors {
				if anySame(m, changed) {
					out = append(out, t)
					break
				}
			}
		}
	}
	return out, unknown
}

// affected reports whether the inspected image's run image (for any of
// its platforms) is one of the changed ones, or one of their mirrors.
func affected(in *Inspected, t Target, changed []string) (bool, string) {
	first := ""
	for _, c := range in.Children {
		if c.Other || !c.App.HasCNBMetadata {
			continue
		}
		run := pickRunImage(in, c, t)
		if first == "" {
			first = run
		}
		if anySame(run, changed) {
			return true, run
		}
		for _, m := range append(append([]string{}, c.App.RunImageMirrors...), t.RunImageMirrors...) {
			if anySame(m, changed) {
				return true, run
			}
		}
	}
	return false, first
}
