package route

// CleanPath returns the routing form of a request path: the query and
// fragment cut off, percent-encoded unreserved characters decoded (so
// "%2e%2e" cannot smuggle a ".." past the router), repeated slashes
// collapsed, and "." and ".." segments resolved. A trailing slash is kept.
// Other percent escapes (e.g. "%2F") stay encoded: they are data, not
// structure. A '%' that starts no valid escape becomes "%25", which makes
// CleanPath idempotent.
//
// When p is already clean it is returned as is; otherwise the result is
// built in buf (pass a stack array's slice to stay allocation-free).
func CleanPath(buf, p []byte) []byte {
	if isClean(p) {
		return p
	}
	out := append(buf[:0], '/')
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '?' || c == '#' {
			break
		}
		if c == '%' {
			if i+2 < len(p) {
				if d, ok := unhex(p[i+1], p[i+2]); ok {
					if unreserved(d) {
						out = append(out, d)
					} else {
						out = append(out, p[i:i+3]...)
					}
					i += 2
					continue
				}
			}
			// A stray '%' is escaped so that decoding can never create a
			// new escape ("%%37" must not become "%7" and then "7").
			out = append(out, "%25"...)
			continue
		}
		out = append(out, c)
	}
	return resolveDots(out)
}

func isClean(p []byte) bool {
	if len(p) == 0 || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '?', '#', '%':
			return false
		case '/':
			rest := p[i+1:]
			if len(rest) == 0 {
				continue
			}
			if rest[0] == '/' {
				return false
			}
			if rest[0] == '.' {
				if len(rest) == 1 || rest[1] == '/' {
					return false
				}
				if rest[1] == '.' && (len(rest) == 2 || rest[2] == '/') {
					return false
				}
			}
		}
	}
	return true
}

// resolveDots rewrites out (which starts with '/') in place.
func resolveDots(out []byte) []byte {
	n := len(out)
	w := 1
	for r := 1; r < n; {
		if out[r] == '/' {
			r++
			continue
		}
		e := r
		for e < n && out[e] != '/' {
			e++
		}
		seg := out[r:e]
		switch {
		case len(seg) == 1 && seg[0] == '.':
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			// out[:w] ends with '/'; drop the last segment before it.
			if w > 1 {
				w--
				for w > 1 && out[w-1] != '/' {
					w--
				}
			}
		default:
			w += copy(out[w:], seg)
			if e < n {
				out[w] = '/'
				w++
			}
		}
		r = e
	}
	return out[:w]
}

func unhex(a, b byte) (byte, bool) {
	x, ok1 := hexVal(a)
	y, ok2 := hexVal(b)
	return x<<4 | y, ok1 && ok2
}

func hexVal(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
