package docs

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// repoFiles lists the tracked files of the repository (paths relative to its
// root) and the root itself.
func repoFiles(t *testing.T) (string, []string) {
	t.Helper()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "go.mod"))
	cmd := exec.Command("git", "ls-files")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("git ls-files: %v (not a git checkout)", err)
	}
	return root, strings.Fields(string(out))
}

// textFile tells whether a path is documentation or source a person reads.
func textFile(p string) bool {
	if strings.HasSuffix(p, "_bpfel.go") || strings.HasSuffix(p, "_bpfeb.go") {
		return false // generated
	}
	switch filepath.Ext(p) {
	case ".md", ".go", ".c", ".h", ".sh", ".yaml", ".yml", ".json", ".service", ".sysusers", ".rb":
		return true
	}
	return filepath.Base(p) == "Makefile" || filepath.Base(p) == "Vagrantfile"
}

// tracker matches phrases that refer to the project's tracker or to how the
// work was organised rather than to xlb: a numbered ticket, "this" ticket,
// a ticket's cases or targets, a work session. The words are split so that
// the expression does not match itself.
var tracker = regexp.MustCompile(`(?i)\b(` + strings.Join([]string{
	`iss` + `ue #?\d+`,
	`(this|that|the|an earlier|a later|another) iss` + `ue('s)? (says|asks|lists|measured|wants|target|cases?|goals?)`,
	`this iss` + `ue`,
	`iss` + `ue's`,
	`breadth iss` + `ue`,
	`this sess` + `ion\b`,
	`filed by a sess` + `ion`,
}, "|") + `)`)

// TestNoTrackerLanguage: documents, comments and messages speak of xlb and
// its users; a ticket's number or "what the ticket says" means nothing to an
// operator reading the docs or the code.
func TestNoTrackerLanguage(t *testing.T) {
	root, paths := repoFiles(t)
	checked := 0
	for _, p := range paths {
		if !textFile(p) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, p))
		if os.IsNotExist(err) {
			continue // deleted in the work tree
		}
		require.NoError(t, err)
		checked++
		for i, line := range strings.Split(string(b), "\n") {
			if m := tracker.FindString(line); m != "" {
				assert.Failf(t, "tracker language", "%s:%d: %q in %q", p, i+1, m, strings.TrimSpace(line))
			}
		}
	}
	require.Greater(t, checked, 100, "the repository's text files were not found")
}

// mdLink is a Markdown link or image target: [text](target) or
// [text](target#anchor).
var mdLink = regexp.MustCompile(`\]\(([^)\s#]+)(#[^)\s]*)?\)`)

// TestDocLinksResolve: every relative link of the README and docs/ names a
// file or folder of the repository.
func TestDocLinksResolve(t *testing.T) {
	root, paths := repoFiles(t)
	links := 0
	for _, p := range paths {
		if filepath.Ext(p) != ".md" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, p))
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				links++
				_, err := os.Stat(filepath.Join(root, filepath.Dir(p), target))
				assert.NoError(t, err, "%s:%d: link to %s", p, i+1, target)
			}
		}
	}
	require.Greater(t, links, 50, "no links found: the pattern is broken")
}
