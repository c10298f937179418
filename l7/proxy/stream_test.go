package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// streamConfig: /events and /files on ordinary and streaming routes; the
// upload route streams bodies above 4 KiB.
const streamConfig = `
listeners: [{name: http, addr: "127.0.0.1:0"}]
access_log: {enabled: true, sample: 1}
routes:
  - {name: events, match: {path_prefix: /events}, pool: app}
  - {name: files, match: {path_prefix: /files}, pool: app, stream_responses: true}
  - {name: buffered, match: {path_prefix: /buffered}, pool: app}
  - {name: upload, match: {path_prefix: /upload}, pool: app, stream_request_body_bytes: 4096, max_body_bytes: 1048576}
pools:
  - name: app
    servers: [{name: a1, addr: "{a1}"}]
`

// within fails the test if ch does not deliver in a generous bound: a
// liveness guard against a proxy that buffers, not a timing assertion.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		require.FailNow(t, "never happened: "+what)
	}
	var zero T
	return zero
}

func TestServerSentEventsArriveBeforeTheResponseEnds(t *testing.T) {
	next := make(chan struct{})
	app := newAppServer(t, "a1", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-next // the second event waits until the client has the first
		fmt.Fprint(w, "data: two\n\n")
	})
	tp := startProxy(t, streamConfig, map[string]*appServer{"a1": app})

	req, err := http.NewRequest("GET", tp.url+"/events/feed", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client(t).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))

	br := bufio.NewReader(resp.Body)
	first := make(chan string, 1)
	go func() {
		line, _ := br.ReadString('\n')
		first <- line
	}()
	assert.Equal(t, "data: one\n", within(t, first, "the first event reaching the client while the response is open"))
	close(next)
	rest, err := io.ReadAll(br)
	require.NoError(t, err)
	assert.Equal(t, "\ndata: two\n\n", string(rest))

	require.Eventually(t, func() bool {
		return countRecords(accessRecords(t, tp), map[string]any{"route": "events", "termination": "ok", "bytes": float64(22)}) == 1
	}, 30*time.Second, 10*time.Millisecond, "the stream is accounted when it ends: %s", tp.logs.String())
}

// bigBody serves size bytes from a small buffer, so the app server itself
// allocates nothing per byte.
func bigBody(size int64) http.HandlerFunc {
	chunk := []byte(strings.Repeat("0123456789abcdef", 4096)) // 64 KiB
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		for left := size; left > 0; {
			n := min(left, int64(len(chunk)))
			if _, err := w.Write(chunk[:n]); err != nil {
				return
			}
			left -= n
		}
	}
}

func TestLargeDownloadStreamsInBoundedMemory(t *testing.T) {
	const size = 64 << 20 // twice the buffered response limit
	app := newAppServer(t, "a1", bigBody(size))
	tp := startProxy(t, streamConfig, map[string]*appServer{"a1": app})
	c := client(t)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	resp, err := c.Get(tp.url + "/files/big.iso")
	require.NoError(t, err)
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	runtime.ReadMemStats(&after)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int64(size), n)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d KiB in the whole test process for a %d MiB download", alloc>>10, size>>20)
	assert.Less(t, alloc, uint64(8<<20), "the proxy copies the body through; it never holds it")

	// HEAD on the streaming route: the headers, no body to stream.
	resp, body := do(t, c, "HEAD", tp.url+"/files/big.iso", nil, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int64(size), resp.ContentLength)
	assert.Empty(t, body)

	// The same download on a buffered route passes the buffer bound and
	// fails instead of growing without limit.
	resp, _ = do(t, c, "GET", tp.url+"/buffered/big.iso", nil, nil)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.Equal(t, 1, countRecords(accessRecords(t, tp), map[string]any{"route": "buffered", "termination": "upstream_error"}))
}

func TestLargeUploadStreamsToTheServer(t *testing.T) {
	const half = 64 << 10
	var mu sync.Mutex
	gotHalf := make(chan struct{})
	current := func() chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		return gotHalf
	}
	// The app server reads the first half, says so, then the rest.
	app := newAppServer(t, "a1", nil) // its recording wrapper reads bodies whole: replaced
	app.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, half)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if c := current(); c != nil {
			select {
			case <-c:
			default:
				close(c)
			}
		}
		rest, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d %s", half+len(rest), r.Header.Get("Content-Length"))
	})
	tp := startProxy(t, streamConfig, map[string]*appServer{"a1": app})

	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			mu.Lock()
			gotHalf = make(chan struct{})
			half1 := gotHalf
			mu.Unlock()
			pr, pw := io.Pipe()
			go func() {
				_, _ = pw.Write([]byte(strings.Repeat("a", half)))
				// The rest is sent only once the server has the first half:
				// a proxy that buffered the body would never get there.
				select {
				case <-half1:
				case <-time.After(10 * time.Second):
				}
				_, _ = pw.Write([]byte(strings.Repeat("b", half)))
				_ = pw.Close()
			}()
			req, err := http.NewRequest("POST", tp.url+"/upload/file", pr)
			require.NoError(t, err)
			if !chunked {
				req.ContentLength = 2 * half
			}
			resp, err := client(t).Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
			want := fmt.Sprintf("%d %d", 2*half, 2*half)
			if chunked {
				want = fmt.Sprintf("%d ", 2*half)
			}
			assert.Equal(t, want, string(body))
			select {
			case <-half1:
			default:
				t.Fatal("the server never had the first half alone")
			}
		})
	}

	t.Run("chunked over the limit", func(t *testing.T) {
		big := strings.NewReader(strings.Repeat("c", 2<<20)) // twice max_body_bytes
		req, err := http.NewRequest("POST", tp.url+"/upload/file", io.NopCloser(big))
		require.NoError(t, err)
		req.ContentLength = -1
		resp, err := client(t).Do(req)
		if err == nil { // the proxy may close while the client still writes
			resp.Body.Close()
			assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
		}
		require.Eventually(t, func() bool {
			return countRecords(accessRecords(t, tp), map[string]any{"route": "upload", "status": float64(413), "termination": "rejected"}) == 1
		}, 30*time.Second, 10*time.Millisecond)
	})
}

func TestStreamClientAbort(t *testing.T) {
	app := newAppServer(t, "a1", bigBody(256<<20))
	tp := startProxy(t, streamConfig, map[string]*appServer{"a1": app})
	resp, err := client(t).Get(tp.url + "/files/huge.iso")
	require.NoError(t, err)
	_, err = io.CopyN(io.Discard, resp.Body, 1<<20)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close()) // the client goes away mid-body
	require.Eventually(t, func() bool {
		return countRecords(accessRecords(t, tp), map[string]any{"route": "files", "termination": "client_abort"}) == 1
	}, 30*time.Second, 10*time.Millisecond, tp.logs.String())
	assert.Equal(t, 1.0, metricValue(t, tp.reg, "xlb_l7_terminations_total", map[string]string{"route": "files", "cause": "client_abort"}))
	assert.Zero(t, tp.dir.Pools()[0].Backends[0].InFlight())
}
