// Package browsertest drives xlb's status page in a real headless
// Chromium (Debian's chromium package, installed by `make deps`) for
// tests: open the page, read the state of a row, take a screenshot. A
// machine without chromium skips the test, saying so.
package browsertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// Timeout bounds everything one browser does in a test.
const Timeout = 90 * time.Second

// Browser is one headless Chromium with the status page open.
type Browser struct {
	t   testing.TB
	ctx context.Context
}

// chromium finds the browser or skips the test.
func chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed: run `make deps` (Debian's chromium package) to run the status page's browser tests")
	return ""
}

// Open starts a fresh Chromium, loads url and waits until the page has
// rendered one status document.
func Open(t testing.TB, url string) *Browser {
	t.Helper()
	path := chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		// Without these Chromium keeps dialling Google's services, which
		// on a closed network is a stream of refused connections.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1500, 1000),
	}
	timeout, cancelTimeout := context.WithTimeout(context.Background(), Timeout)
	alloc, cancelAlloc := chromedp.NewExecAllocator(timeout, opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc() // waits for the browser process to exit
		cancelTimeout()
	})
	b := &Browser{t: t, ctx: ctx}
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(url)), "open %s in chromium", url)
	require.Eventually(t, func() bool { return b.Updates() > 0 }, 20*time.Second, 100*time.Millisecond,
		"the page at %s never rendered a status document; banner: %q", url, b.Text("#banner"))
	return b
}

// eval runs a JavaScript expression in the page and decodes its value; a
// failure fails the test.
func eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	require.NoError(b.t, err, "evaluate %s", expr)
	return v
}

// Updates is how many status documents the page has rendered since it
// loaded; it grows without reloads.
func (b *Browser) Updates() int {
	b.t.Helper()
	return eval[int](b, `Number(document.body.dataset.updates || 0)`)
}

// Text is the text of the first element matching the CSS selector ("" when
// there is none).
func (b *Browser) Text(selector string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, selector))
}

// RowState is the state class of the table row or summary card with the
// given data-key ("" when there is none): up, slow, drain, eject, down or
// unknown.
func (b *Browser) RowState(key string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`(document.querySelector('tr[data-key=%q]') || {dataset: {}}).dataset.state || ""`, key))
}

// RowText is the text of the table row with the given data-key, cells
// separated by " | ".
func (b *Browser) RowText(key string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`Array.from((document.querySelector('tr[data-key=%q]') || {cells: []}).cells).map(c => c.textContent).join(" | ")`, key))
}

// Filter clears the filter box and types text into it, key by key.
func (b *Browser) Filter(text string) {
	b.t.Helper()
	_ = eval[bool](b, `(() => { const f = document.getElementById("filter"); f.value = ""; f.dispatchEvent(new Event("input")); return true })()`)
	if text != "" {
		require.NoError(b.t, chromedp.Do(b.ctx, chromedp.SendKeys("#filter", text)))
	}
}

// VisibleRows counts the rows of a table (by its id: backends, servers,
// ...) that the filter lets through.
func (b *Browser) VisibleRows(table string) int {
	b.t.Helper()
	return eval[int](b, fmt.Sprintf(`document.querySelectorAll('#table-%s tbody tr[data-key]').length`, table))
}

// SortBy clicks the header of a table's column (by its JSON key) and
// returns the row keys in their new order.
func (b *Browser) SortBy(table, column string) []string {
	b.t.Helper()
	require.NoError(b.t, chromedp.Do(b.ctx, chromedp.Click(fmt.Sprintf(`#table-%s th[data-key=%q]`, table, column))))
	return eval[[]string](b, fmt.Sprintf(`Array.from(document.querySelectorAll('#table-%s tbody tr[data-key]')).map(r => r.dataset.key)`, table))
}

// Screenshot writes a PNG of the whole page under the test's temp dir and
// logs its path.
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	require.NoError(b.t, err)
	dir := os.Getenv("XLB_SCREENSHOT_DIR") // keep them past the test when set
	if dir == "" {
		dir = b.t.TempDir()
	}
	path := filepath.Join(dir, name+".png")
	require.NoError(b.t, os.WriteFile(path, png, 0o644))
	b.t.Logf("screenshot of the status page: %s", path)
	return path
}

// Forward listens on a loopback port and relays every connection to addr
// through dial (for example a network namespace's DialContext), so a
// browser in the root namespace reaches a server inside one. It returns
// the loopback address; everything stops at the end of the test.
func Forward(t testing.TB, dial func(ctx context.Context, network, addr string) (net.Conn, error), addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		_ = ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				relay(ctx, c, dial, addr)
			}()
		}
	}()
	return ln.Addr().String()
}

func relay(ctx context.Context, c net.Conn, dial func(ctx context.Context, network, addr string) (net.Conn, error), addr string) {
	defer c.Close()
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	up, err := dial(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return // the browser sees a closed connection and the page says so
	}
	defer up.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close(); _ = up.Close() })
	defer stop()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, err := io.Copy(dst, src)
		if tc, ok := dst.(interface{ CloseWrite() error }); ok && (err == nil || errors.Is(err, net.ErrClosed)) {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
}

// Mark sets a marker in the loaded document; Marked reports whether it is
// still there, which it is not after a reload or a navigation.
func (b *Browser) Mark() {
	b.t.Helper()
	_ = eval[bool](b, `window.__xlbMark = true`)
}

// Marked: see Mark.
func (b *Browser) Marked() bool {
	b.t.Helper()
	return eval[bool](b, `window.__xlbMark === true`)
}
