// Package docs checks the repository's markdown: every link of README.md and
// docs/*.md resolves. It reads files only, so it needs no control plane and
// runs apart from the end-to-end suite's TestMain.
package docs

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// TestDocsLinksResolve checks every link in README.md and docs/*.md: a
// relative link names a file or directory that exists (relative to the page
// that holds it), and its #anchor, or a bare #anchor, names a heading of that
// page by GitHub's slug. An http(s) link is not fetched, but must parse and
// name a host.
func TestDocsLinksResolve(t *testing.T) {
	t.Run("slugs", func(t *testing.T) {
		for heading, want := range map[string]string{
			"Quick start":                   "quick-start",
			"`GET /`: this elector's view":  "get--this-electors-view",
			"Push, not poll":                "push-not-poll",
			"Two candidates with one `-id`": "two-candidates-with-one--id",
			"Migrating from configmaps (or endpoints) to leases without downtime": "migrating-from-configmaps-or-endpoints-to-leases-without-downtime",
			"snake_case and [a link](x.md) stay":                                  "snake_case-and-a-link-stay",
		} {
			if got := slug(heading); got != want {
				t.Errorf("slug(%q) = %q, want %q", heading, got, want)
			}
		}
	})

	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages = append([]string{filepath.Join(root, "README.md")}, pages...)
	anchors := map[string][]string{} // page → its headings' slugs
	anchorsOf := func(page string) ([]string, error) {
		if a, ok := anchors[page]; ok {
			return a, nil
		}
		b, err := os.ReadFile(page)
		if err != nil {
			return nil, err
		}
		a := headingSlugs(string(b))
		anchors[page] = a
		return a, nil
	}
	links := 0
	for _, page := range pages {
		rel, _ := filepath.Rel(root, page)
		t.Run(rel, func(t *testing.T) {
			b, err := os.ReadFile(page)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range markdownLinks(string(b)) {
				links++
				if err := checkLink(root, page, l.target, anchorsOf); err != nil {
					t.Errorf("%s:%d: [%s](%s): %v", rel, l.line, l.text, l.target, err)
				}
			}
		})
	}
	if links == 0 {
		t.Error("no links found: the parser is broken")
	}
	t.Logf("%d pages, %d links", len(pages), links)
}

// repoRoot returns the root of the repository: go test runs a package's tests
// in its directory, test/e2e/docs.
func repoRoot() (string, error) {
	return filepath.Abs(filepath.Join("..", "..", ".."))
}

func checkLink(root, page, target string, anchorsOf func(string) ([]string, error)) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	switch {
	case u.Scheme == "http" || u.Scheme == "https":
		if u.Host == "" {
			return fmt.Errorf("no host")
		}
		return nil // not fetched: the suite runs without a network
	case u.Scheme != "" || u.Host != "":
		return fmt.Errorf("scheme %q: want a relative path, #anchor or http(s)", u.Scheme)
	}
	file := page
	if u.Path != "" {
		if strings.HasPrefix(u.Path, "/") {
			return fmt.Errorf("absolute path: make it relative to the page")
		}
		file = filepath.Join(filepath.Dir(page), filepath.FromSlash(u.Path))
		if r, err := filepath.Rel(root, file); err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
			return fmt.Errorf("outside the repository")
		}
		fi, err := os.Stat(file)
		if err != nil {
			return fmt.Errorf("no such file or directory")
		}
		if fi.IsDir() && u.Fragment != "" {
			return fmt.Errorf("an anchor on a directory")
		}
	}
	if u.Fragment == "" {
		if strings.HasSuffix(target, "#") {
			return fmt.Errorf("empty anchor")
		}
		return nil
	}
	if !strings.HasSuffix(file, ".md") {
		return fmt.Errorf("an anchor in a file that is not markdown")
	}
	a, err := anchorsOf(file)
	if err != nil {
		return err
	}
	if !slices.Contains(a, u.Fragment) {
		return fmt.Errorf("no heading with anchor #%s in %s", u.Fragment, filepath.Base(file))
	}
	return nil
}

type link struct {
	text, target string
	line         int
}

var (
	fence      = regexp.MustCompile("^\\s*(```|~~~)")
	codeSpan   = regexp.MustCompile("``[^`]+``|`[^`]+`")
	inlineLink = regexp.MustCompile(`!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^()\s>]*)>?(?:\s+"[^"]*")?\s*\)`)
	refDef     = regexp.MustCompile(`^\s{0,3}\[([^\]]+)\]:\s*<?(\S+?)>?(?:\s+.*)?$`)
	headingRE  = regexp.MustCompile(`^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$`)
	linkSyntax = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
)

// markdownLinks returns the inline links, images and link definitions of a
// markdown text, outside fenced code blocks and code spans. A link's text may
// run over several lines.
func markdownLinks(text string) []link {
	lines := strings.Split(text, "\n")
	inFence := false
	for i, line := range lines {
		if fence.MatchString(line) {
			inFence = !inFence
			lines[i] = ""
		} else if inFence {
			lines[i] = ""
		}
	}
	var out []link
	for i, line := range lines {
		if m := refDef.FindStringSubmatch(line); m != nil {
			out = append(out, link{text: m[1], target: m[2], line: i + 1})
			lines[i] = ""
		}
	}
	text = strings.Join(lines, "\n")
	// A code span's text is not markdown, but one inside a link's text (the
	// [`deploy/`](deploy/) kind) must not hide the link: blank out the
	// spans byte for byte, keeping offsets and line breaks.
	clean := codeSpan.ReplaceAllStringFunc(text, func(s string) string {
		b := []byte(s)
		for i := range b {
			if b[i] != '\n' {
				b[i] = 'x'
			}
		}
		return string(b)
	})
	for _, m := range inlineLink.FindAllStringSubmatchIndex(clean, -1) {
		out = append(out, link{
			text:   strings.Join(strings.Fields(text[m[2]:m[3]]), " "),
			target: text[m[4]:m[5]],
			line:   strings.Count(text[:m[0]], "\n") + 1,
		})
	}
	slices.SortFunc(out, func(a, b link) int { return a.line - b.line })
	return out
}

// headingSlugs returns the anchors GitHub gives a page's ATX headings, with
// -1, -2 … for repeats.
func headingSlugs(text string) []string {
	var out []string
	seen := map[string]int{}
	inFence := false
	for _, line := range strings.Split(text, "\n") {
		if fence.MatchString(line) {
			inFence = !inFence
			continue
		}
		m := headingRE.FindStringSubmatch(line)
		if inFence || m == nil {
			continue
		}
		s := slug(m[2])
		if n := seen[s]; n > 0 {
			out = append(out, fmt.Sprintf("%s-%d", s, n))
		} else {
			out = append(out, s)
		}
		seen[s]++
	}
	return out
}

// slug is GitHub's anchor for a heading: the text without markup (a link
// keeps its text, a code span its content), lowercased, spaces to '-',
// every other character that is not a letter, digit, '-' or '_' dropped.
func slug(heading string) string {
	heading = linkSyntax.ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
