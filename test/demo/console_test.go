package main

import (
	"io"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConsolePlainWhenNotATerminal writes through a pipe, as CI and
// `| tee` do: no escape codes, no carriage returns, one progress line per
// interval, and failed checks remembered.
func TestConsolePlainWhenNotATerminal(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	c := newConsole(w)
	require.False(t, c.tty)
	c.step("1. Steady state")
	c.cmd("xlb status")
	c.progress("load 1s")
	c.progress("load 2s") // within the interval: not written
	assert.True(t, c.check(true, "fine"))
	assert.False(t, c.check(false, "broken"))
	c.endProgress()
	require.NoError(t, w.Close())
	out, err := io.ReadAll(r)
	require.NoError(t, err)
	s := string(out)
	assert.NotContains(t, s, "\033")
	assert.NotContains(t, s, "\r")
	assert.Contains(t, s, "== 1. Steady state\n")
	assert.Contains(t, s, "  $ xlb status\n")
	assert.Equal(t, 1, strings.Count(s, "· load"))
	assert.Contains(t, s, "  ✓ fine\n")
	assert.Contains(t, s, "  ✗ broken\n")
	assert.Equal(t, []string{"broken"}, c.failed)
	assert.Equal(t, 2, c.checks)
}

func TestConsoleTerminalKeepsOneLiveLine(t *testing.T) {
	var b strings.Builder
	c := &console{w: &b, tty: true}
	c.progress("load 1s")
	c.printf("hello")
	c.progress("load 2s")
	c.endProgress()
	s := b.String()
	// The live line is cleared before other output and redrawn after it.
	assert.Equal(t, "\033[2m  load 1s\033[0m\r\033[Khello\n\033[2m  load 1s\033[0m\r\033[K\033[2m  load 2s\033[0m\r\033[K", s)
}

func TestTallyOrdersNumbersNaturally(t *testing.T) {
	assert.Equal(t, "b2=1 b10=2 c1=3 c16=4", tally(map[string]int{"c16": 4, "b10": 2, "c1": 3, "b2": 1}))
	assert.True(t, allPositive(map[string]int{"a": 1, "b": 2}, []string{"a", "b"}))
	assert.False(t, allPositive(map[string]int{"a": 1}, []string{"a", "b"}))
	assert.False(t, allPositive(map[string]int{}, nil), "nothing to see is not a pass")
}
