package rebase

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the JSON document `cipack rebase --output json` prints.
type Report struct {
	DryRun bool `json:"dryRun"`
	// Shard is "K/N" for one part of a sharded sweep (--shard).
	Shard    string         `json:"shard,omitempty"`
	Counts   map[string]int `json:"counts"`
	Images   []Outcome      `json:"images"`
	Duration time.Duration  `json:"duration_ns"`
}

// NewReport summarizes outcomes.
func NewReport(outcomes []Outcome, dryRun bool, d time.Duration) Report {
	counts := map[string]int{}
	for _, v := range []Verdict{UpToDate, Rebase, Rebuild, Skipped, Failed} {
		counts[string(v)] = 0
	}
	for _, o := range outcomes {
		counts[string(o.Verdict)]++
	}
	return Report{DryRun: dryRun, Counts: counts, Images: outcomes, Duration: d}
}

// Failed counts the images that need attention.
func (r Report) Failed() int {
	n := 0
	for _, o := range r.Images {
		if o.Failed() {
			n++
		}
	}
	return n
}

// Handled counts the images that did not fail.
func (r Report) Handled() int { return len(r.Images) - r.Failed() }

// Pending counts the images that need a change (for --dry-run --exit-code).
func (r Report) Pending() int { return r.Counts[string(Rebase)] + r.Counts[string(Rebuild)] }

// Moved lists image → new digest for the images a rebase moved (not a
// staged candidate: no tag moved to it yet).
func (r Report) Moved() map[string]string {
	m := map[string]string{}
	for _, o := range r.Images {
		if o.NewDigest != "" && !o.Staged {
			m[o.Image] = o.NewDigest
		}
	}
	return m
}

// WriteTable writes the human-readable table.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tVERDICT\tREASON\tDIGEST\tTIME\tDETAIL")
	for _, o := range r.Images {
		detail := o.Detail
		if o.Error != "" {
			detail = o.Error
		}
		if o.Triggered {
			detail = "rebuild triggered: " + detail
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", oneLine(o.Image), oneLine(string(o.Verdict)), oneLine(dash(o.Reason)), oneLine(digests(o)), o.Duration.Round(time.Millisecond), oneLine(detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%s\n", r.summaryLine())
	return err
}

func (r Report) summaryLine() string {
	mode := ""
	staged := 0
	for _, o := range r.Images {
		if o.Staged {
			staged++
		}
	}
	switch {
	case r.DryRun:
		mode = " (dry run: nothing pushed)"
	case staged > 0:
		mode = fmt.Sprintf(" (staged: %d candidates pushed by digest, no tag moved)", staged)
	}
	return fmt.Sprintf("%d images: %d up-to-date, %d rebase, %d rebuild, %d skipped, %d error%s",
		len(r.Images), r.Counts[string(UpToDate)], r.Counts[string(Rebase)], r.Counts[string(Rebuild)],
		r.Counts[string(Skipped)], r.Counts[string(Failed)], mode)
}

// Markdown renders the report as a job summary.
func (r Report) Markdown() string {
	var b strings.Builder
	b.WriteString("### cipack rebase\n\n" + r.summaryLine() + "\n\n")
	b.WriteString("| Image | Verdict | Reason | Digest | Source | Detail |\n|---|---|---|---|---|---|\n")
	for _, o := range r.Images {
		detail := o.Detail
		if o.Error != "" {
			detail = "**" + o.Error + "**"
		}
		if o.Triggered {
			detail = "rebuild triggered: " + detail
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s |\n", oneLine(o.Image), oneLine(string(o.Verdict)), oneLine(dash(o.Reason)), oneLine(digests(o)), oneLine(dash(o.Source)), strings.ReplaceAll(oneLine(detail), "|", "\\|"))
	}
	return b.String()
}

func digests(o Outcome) string {
	switch {
	case o.NewDigest != "" && o.Staged:
		return short(o.OldDigest) + " → candidate " + short(o.NewDigest)
	case o.NewDigest != "":
		return short(o.OldDigest) + " → " + short(o.NewDigest)
	case o.OldDigest != "":
		return short(o.OldDigest)
	}
	return "-"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a cell on its line: details and errors carry text from
// registries, labels and report files, and a line break in them could
// start a line a CI reads as a command (GitHub reads "::" on stdout).
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\u2028' || r == '\u2029' || (r < 0x20 && r != '\t') {
			return ' '
		}
		return r
	}, s)
}
