package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// console writes the demo's output. On a terminal it keeps one live
// progress line at the bottom and colours the checks; anywhere else it
// writes plain lines (a progress line every plainEvery) and no escape
// codes, so logs and CI output stay readable.
type console struct {
	mu     sync.Mutex
	w      io.Writer
	tty    bool
	status string
	last   time.Time
	checks int
	failed []string
}

const plainEvery = 5 * time.Second

func newConsole(f *os.File) *console {
	st, err := f.Stat()
	return &console{w: f, tty: err == nil && st.Mode()&os.ModeCharDevice != 0}
}

func (c *console) esc(code, s string) string {
	if !c.tty {
		return s
	}
	return "\033[" + code + "m" + s + "\033[0m"
}

// clearLocked removes the live line before other output.
func (c *console) clearLocked() {
	if c.tty && c.status != "" {
		fmt.Fprint(c.w, "\r\033[K")
	}
}

func (c *console) redrawLocked() {
	if c.tty && c.status != "" {
		fmt.Fprint(c.w, c.esc("2", c.status))
	}
}

// printf writes a line (or several).
func (c *console) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearLocked()
	fmt.Fprintf(c.w, format+"\n", args...)
	c.redrawLocked()
}

// block writes text indented, e.g. a command's output.
func (c *console) block(text string) {
	text = strings.TrimRight(text, "\n")
	if text == "" {
		return
	}
	c.printf("    %s", strings.ReplaceAll(text, "\n", "\n    "))
}

func (c *console) step(format string, args ...any) {
	c.printf("\n%s", c.esc("1", "== "+fmt.Sprintf(format, args...)))
}

// cmd shows a command as an operator would type it.
func (c *console) cmd(line string) { c.printf("  %s", c.esc("36", "$ "+line)) }

// check prints ✓ or ✗ and remembers a failure; it returns ok.
func (c *console) check(ok bool, format string, args ...any) bool {
	msg := fmt.Sprintf(format, args...)
	c.mu.Lock()
	c.checks++
	if !ok {
		c.failed = append(c.failed, msg)
	}
	c.mu.Unlock()
	if ok {
		c.printf("  %s %s", c.esc("32", "✓"), msg)
	} else {
		c.printf("  %s %s", c.esc("31", "✗"), msg)
	}
	return ok
}

// progress shows the load's live line: in place on a terminal, every
// plainEvery as a line elsewhere.
func (c *console) progress(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tty {
		c.clearLocked()
		c.status = "  " + line
		c.redrawLocked()
		return
	}
	if time.Since(c.last) >= plainEvery {
		c.last = time.Now()
		fmt.Fprintf(c.w, "  · %s\n", line)
	}
}

// endProgress removes the live line (the load has stopped).
func (c *console) endProgress() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearLocked()
	c.status = ""
}

// Write lets the fleet's build progress go through the console.
func (c *console) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		c.printf("  %s", l)
	}
	return len(p), nil
}
