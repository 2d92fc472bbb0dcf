package testenv

import "strings"

// MarkdownSection returns the text after heading up to the next heading of
// level 2 or 3: how the README tests find one table's surroundings.
func MarkdownSection(doc, heading string) (string, bool) {
	i := strings.Index(doc, heading)
	if i < 0 {
		return "", false
	}
	rest := doc[i+len(heading):]
	for _, end := range []string{"\n### ", "\n## "} {
		if j := strings.Index(rest, end); j >= 0 {
			rest = rest[:j]
		}
	}
	return rest, true
}

// TableNames returns the backticked first cells of the Markdown table
// whose header row starts with header (e.g. "| Param |").
func TableNames(section, header string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(section, "\n") {
		switch {
		case strings.HasPrefix(l, header):
			in = true
		case in && strings.HasPrefix(l, "|---"):
		case in && strings.HasPrefix(l, "| `"):
			cell := strings.TrimPrefix(l, "| `")
			out = append(out, cell[:strings.Index(cell, "`")])
		case in:
			return out
		}
	}
	return out
}
