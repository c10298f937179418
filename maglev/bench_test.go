package maglev

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// textbook is the paper's pseudocode taken literally, as the side-by-side
// baseline: the full N×M permutation matrix is materialised up front.
// Unweighted, as in the paper.
func textbook(names []string, m int) []int32 {
	n := len(names)
	perm := make([][]uint32, n)
	for i, name := range names {
		offset := offsetHash(name) % uint64(m)
		skip := skipHash(name)%uint64(m-1) + 1
		row := make([]uint32, m)
		for j := range row {
			row[j] = uint32((offset + uint64(j)*skip) % uint64(m))
		}
		perm[i] = row
	}
	next := make([]int, n)
	entry := make([]int32, m)
	for i := range entry {
		entry[i] = -1
	}
	filled := 0
	for {
		for i := 0; i < n; i++ {
			c := perm[i][next[i]]
			for entry[c] >= 0 {
				next[i]++
				c = perm[i][next[i]]
			}
			entry[c] = int32(i)
			next[i]++
			filled++
			if filled == m {
				return entry
			}
		}
	}
}

// The two implementations agree on balance (both give ⌊M/N⌋ or ⌈M/N⌉);
// they differ in slot order because Build sorts participants by name.
func TestTextbookBaselineBalanced(t *testing.T) {
	bs := equalBackends(10)
	names := make([]string, len(bs))
	for i, b := range bs {
		names[i] = b.Name
	}
	entry := textbook(names, 251)
	counts := make([]int, len(names))
	for _, e := range entry {
		require.GreaterOrEqual(t, e, int32(0))
		counts[e]++
	}
	for _, c := range counts {
		assert.True(t, c == 25 || c == 26, "textbook count %d", c)
	}
}

func BenchmarkBuild(b *testing.B) {
	for _, m := range []int{65537, 655373} {
		for _, n := range []int{10, 100, 1000} {
			bs := equalBackends(n)
			names := make([]string, n)
			for i, x := range bs {
				names[i] = x.Name
			}
			b.Run(fmt.Sprintf("impl=xlb/N=%d/M=%d", n, m), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := Build(bs, m); err != nil {
						b.Fatal(err)
					}
				}
			})
			// The matrix for N=1000, M=655373 is 2.6 GB: the baseline is
			// only run where it fits in a sane amount of memory.
			if n*m > 100_000_000 {
				continue
			}
			b.Run(fmt.Sprintf("impl=textbook/N=%d/M=%d", n, m), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					textbook(names, m)
				}
			})
		}
	}
}
