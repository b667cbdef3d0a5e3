package deploy

import (
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// repoFiles calls fn with the path (relative to the repository root) and
// content of every text file of the repository: sources, docs, configs.
func repoFiles(t *testing.T, fn func(path, content string)) {
	t.Helper()
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", ".devstack", "bin", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".png", ".jpg", ".ico", ".sum":
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("..", path)
		fn(filepath.ToSlash(rel), string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The variables the code reads (env tags, os.Getenv) and the NATS and
// compose configs interpolate.
var (
	goVarRe   = regexp.MustCompile(`(?:env:"|Getenv\("|LookupEnv\(")((?:WXLOGIN|FAKEWECHAT|SUBSCRIBER)_[A-Z0-9_]+)"`)
	confVarRe = regexp.MustCompile(`\$\{?(WXLOGIN_[A-Z0-9_]+)`)
)

// Every variable anything in the repository reads is documented in
// docs/configuration.md.
func TestConfigurationDocListsEveryVariable(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	repoFiles(t, func(path, content string) {
		re := confVarRe
		switch {
		case strings.HasSuffix(path, ".go"):
			re = goVarRe
		case strings.HasSuffix(path, ".conf"), strings.HasSuffix(path, ".yml"), strings.HasSuffix(path, ".yaml"):
		default:
			return
		}
		for _, m := range re.FindAllStringSubmatch(content, -1) {
			seen[m[1]] = path
		}
	})
	if len(seen) < 20 {
		t.Fatalf("found only %d variables; is the repository root where the test looks?", len(seen))
	}
	for v, path := range seen {
		if !strings.Contains(string(doc), "`"+v+"`") {
			t.Errorf("%s (read in %s) is not in docs/configuration.md", v, path)
		}
	}
}

// The repository stands alone: no file points at a contract or notes kept
// outside it; what they said lives in docs/.
func TestNoReferencesOutsideTheRepo(t *testing.T) {
	// Built from parts, so this file does not match itself.
	outside := []string{"DESIGN" + ".md", "wechat-api" + ".md", "STYLE" + ".md", "wave2" + ".md"}
	files := 0
	repoFiles(t, func(path, content string) {
		files++
		for _, name := range outside {
			if strings.Contains(content, name) {
				t.Errorf("%s mentions %s, a file outside the repository; point at docs/ instead", path, name)
			}
		}
	})
	if files < 100 {
		t.Fatalf("walked only %d files; is the repository root where the test looks?", files)
	}
}

var (
	mdLinkRe    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdHeadingRe = regexp.MustCompile(`(?m)^#{1,6} +(.+?) *$`)
	mdFenceRe   = regexp.MustCompile("(?ms)^```.*?^```")
)

// githubAnchors are the anchors GitHub gives the headings of a markdown
// file: lower case, punctuation dropped, spaces as hyphens, repeats numbered.
func githubAnchors(md string) map[string]bool {
	md = mdFenceRe.ReplaceAllString(md, "")
	anchors, seen := map[string]bool{}, map[string]int{}
	for _, m := range mdHeadingRe.FindAllStringSubmatch(md, -1) {
		var b strings.Builder
		for _, r := range strings.ToLower(m[1]) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsMark(r) || unicode.Is(unicode.Nd, r):
				b.WriteRune(r)
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			anchors[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			anchors[a] = true
		}
		seen[a]++
	}
	return anchors
}

// TestMarkdownLinksResolve: every relative link of the repository's
// markdown files names a file or folder that exists, and an anchor, where
// it has one, names a heading of that file.
func TestMarkdownLinksResolve(t *testing.T) {
	var broken []string
	repoFiles(t, func(path, content string) {
		if filepath.Ext(path) != ".md" {
			return
		}
		for _, m := range mdLinkRe.FindAllStringSubmatch(mdFenceRe.ReplaceAllString(content, ""), -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") || strings.HasPrefix(link, "/") {
				continue // absolute: another site, or a path on the gateway
			}
			target, anchor, _ := strings.Cut(link, "#")
			if a, err := url.PathUnescape(anchor); err == nil {
				anchor = a
			}
			file := path
			if target != "" {
				file = filepath.ToSlash(filepath.Join(filepath.Dir(path), target))
			}
			st, err := os.Stat(filepath.Join("..", file))
			if err != nil {
				broken = append(broken, path+": "+link+" (no such file)")
				continue
			}
			if anchor == "" || st.IsDir() || filepath.Ext(file) != ".md" {
				continue
			}
			b, err := os.ReadFile(filepath.Join("..", file))
			if err != nil {
				t.Fatal(err)
			}
			if !githubAnchors(string(b))[anchor] {
				broken = append(broken, path+": "+link+" (no such heading)")
			}
		}
	})
	if len(broken) > 0 {
		t.Errorf("broken links:\n%s", strings.Join(broken, "\n"))
	}
}
