package project

import (
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"

	"github.com/cipack/cipack/internal/safefs"
)

// Filters reports whether the descriptor narrows the files the build sees.
func (d *Descriptor) Filters() bool { return d != nil && (len(d.Include) > 0 || len(d.Exclude) > 0) }

// Copy copies the app at src into dst (a new or empty directory) as the
// build should see it, filtered as Filter says. The app may come from
// anyone, so the copy is safefs.CopyTree's: links are copied as links,
// never followed; FIFOs, devices and other mounts are left out; files with
// more than one hard link are left out (SkippedLinks), since the copy is
// made as root and another link may be outside the app (/etc/shadow).
// An empty directory is kept when the patterns keep it (KeepEmptyDir),
// so an excluded tree, or one include does not name, leaves no trace.
func (d *Descriptor) Copy(src, dst string) error {
	stats, err := safefs.CopyTree(src, dst, safefs.CopyOptions{
		Filter:         d.Filter(),
		SkipHardLinks:  true,
		PruneEmptyDirs: true,
		KeepDir:        d.KeepEmptyDir(),
	})
	d.SkippedLinks = stats.SkippedLinks
	return err
}

// Filter is the include/exclude filter for safefs.CopyTree (rel is
// slash-separated, relative to the app), or nil when the descriptor
// narrows nothing.
//
// Patterns are gitignore lines, matched as git matches them, by go-git's
// matcher: blank lines and "#" comments are skipped; the last pattern
// that matches decides, and "!" negates; a pattern ending in "/" matches
// directories only; one with a "/" elsewhere is anchored at the app's
// root, one without matches a name at any depth; "*" and "?" stay within
// a name, "**" spans directories. As in git, a path matches when it or
// one of its parent directories does, so nothing under a matched
// directory can be negated back (see matchSelf for where go-git's own
// Matcher departs from git, and why it is not used whole).
//
// With exclude, a matching path is left out (a directory with its whole
// subtree). With include, directories are entered (Copy drops those left
// empty unless include names them, see KeepEmptyDir) and a file is kept
// when it matches, so include = ["src/"] keeps src/a/b.go.
//
// pack matches with sabhiram/go-gitignore instead, which turns each
// pattern into a regular expression tried on the whole path, last match
// winning, and walks into excluded directories. The two agree on plain
// patterns; they can differ where a negation targets something under a
// matched directory (exclude = ["build/", "!build/keep"] keeps build/keep
// in pack, not in git or here; include = ["src/", "!src/test/"] leaves
// src/test out in pack, not here), on escapes and character classes
// (filepath.Match's rules here), and on trailing spaces.
func (d *Descriptor) Filter() func(rel string, isDir bool) bool {
	if !d.Filters() {
		return nil
	}
	if len(d.Exclude) > 0 {
		rs := compile(d.Exclude)
		return func(rel string, isDir bool) bool { return !matches(rs, rel, isDir) }
	}
	rs := compile(d.Include)
	return func(rel string, isDir bool) bool { return isDir || matches(rs, rel, isDir) }
}

// KeepEmptyDir says which directories the copy keeps when nothing in
// them is copied (nil when the descriptor narrows nothing: all are).
//
// Why: git tracks no directory, only files, so "as git would" decides
// which paths the patterns keep, and nothing about a directory left
// empty. The build's app is pack's, not a checkout: pack's
// archive.WriteDirToTar (pack v0.40.0) writes a tar entry for every path
// its filter accepts, directories included, so an empty directory that is
// not excluded reaches /workspace, and an app that ships one (a log/ or
// uploads/ the app writes to at run time) relies on it. Hence: with
// exclude, every directory the filter lets in is kept, empty or not
// (exclude = ["*.log"] keeps log/ when it held only logs, as pack does);
// with include, a directory is kept only when the patterns match it or a
// parent (include = ["src/"] keeps src/empty/; include = ["*.go"] makes
// src/ only for the files it holds), so include still reveals no name it
// does not cover.
func (d *Descriptor) KeepEmptyDir() func(rel string) bool {
	if !d.Filters() {
		return nil
	}
	if len(d.Exclude) > 0 {
		return func(string) bool { return true }
	}
	rs := compile(d.Include)
	return func(rel string) bool { return matches(rs, rel, true) }
}

// rule is one gitignore line. A line with no "/" before its end matches
// a name at any depth: go-git's pattern does that. One with a "/" is
// anchored at the app's root and matched against the whole path here:
// go-git's glob also matches any path below a match ("docs/*" matches
// docs/keep/b.md, "src/deep/**" matches src/deep itself), which would
// let a line decide for paths git never tries it on.
type rule struct {
	name             gitignore.Pattern
	segs             []string
	dirOnly, negated bool
}

// compile parses gitignore lines, skipping what git skips in a
// .gitignore (go-git's ParsePattern leaves that to its file reader).
func compile(lines []string) []rule {
	var rs []rule
	for _, l := range lines {
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			continue
		}
		r := rule{}
		body := l
		if r.negated = strings.HasPrefix(body, "!"); r.negated {
			body = body[1:]
		}
		if r.dirOnly = strings.HasSuffix(body, "/"); r.dirOnly {
			body = strings.TrimSuffix(body, "/")
		}
		if !strings.Contains(body, "/") {
			r.name = gitignore.ParsePattern(l, nil)
		} else {
			r.segs = strings.Split(strings.TrimPrefix(body, "/"), "/")
		}
		rs = append(rs, r)
	}
	return rs
}

// matches reports whether rel or one of its parent directories is
// matched, as git walks a tree: a directory matched by its own last
// matching line is not entered, so nothing below it comes back.
func matches(rs []rule, rel string, isDir bool) bool {
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		if matchSelf(rs, parts[:i], true) {
			return true
		}
	}
	return matchSelf(rs, parts, isDir)
}

// matchSelf is whether the last line that matches the path itself
// excludes it. A name line is tried on the name alone: go-git's matcher
// would also let a line that matches a parent decide for what is below
// it (after "*", "!*/" would re-include every file in a subdirectory,
// where git re-includes only the directories).
func matchSelf(rs []rule, parts []string, isDir bool) bool {
	for i := len(rs) - 1; i >= 0; i-- {
		r := rs[i]
		if r.name != nil {
			if res := r.name.Match(parts[len(parts)-1:], isDir); res != gitignore.NoMatch {
				return res == gitignore.Exclude
			}
			continue
		}
		if (isDir || !r.dirOnly) && globPath(r.segs, parts) {
			return !r.negated
		}
	}
	return false
}

// globPath matches a path against an anchored pattern's segments:
// filepath.Match per segment, "**" for any number of them (a trailing
// "**" for everything inside, not the directory itself), as git's
// wildmatch with FNM_PATHNAME.
func globPath(pat, path []string) bool {
	if len(pat) == 0 {
		return len(path) == 0
	}
	if pat[0] == "**" {
		if len(pat) == 1 {
			return len(path) > 0
		}
		for k := 0; k <= len(path); k++ {
			if globPath(pat[1:], path[k:]) {
				return true
			}
		}
		return false
	}
	if len(path) == 0 {
		return false
	}
	ok, err := filepath.Match(pat[0], path[0])
	return err == nil && ok && globPath(pat[1:], path[1:])
}
