package maglev

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func equalBackends(n int) []Backend {
	bs := make([]Backend, n)
	for i := range bs {
		bs[i] = Backend{Name: fmt.Sprintf("10.1.%d.%d:80", i/250, i%250+1), Weight: 1}
	}
	return bs
}

func mustBuild(t testing.TB, bs []Backend, m int) Table {
	t.Helper()
	tab, err := Build(bs, m)
	require.NoError(t, err)
	return tab
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name     string
		backends []Backend
		m        int
		want     error
		msg      string
	}{
		{"not prime", equalBackends(3), 65536, ErrSize, "65536 is not prime"},
		{"too small", equalBackends(3), 1, ErrSize, "outside"},
		{"too large", equalBackends(3), MaxSize + 2, ErrSize, "outside"},
		{"more backends than slots", equalBackends(20), 13, ErrSize, "do not fit in 13 slots"},
		{"duplicate", []Backend{{"a", 1}, {"a", 2}}, 13, ErrBackend, `duplicate backend name "a"`},
		{"empty name", []Backend{{"", 1}}, 13, ErrBackend, "empty name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(tt.backends, tt.m)
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.want)
			assert.ErrorContains(t, err, tt.msg)
		})
	}
}

func TestEmptyTable(t *testing.T) {
	tests := []struct {
		name     string
		backends []Backend
	}{
		{"no backends", nil},
		{"all weights zero", []Backend{{"a", 0}, {"b", 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := mustBuild(t, tt.backends, 13)
			assert.True(t, tab.Empty())
			assert.Zero(t, tab.Size())
			_, ok := tab.Lookup(42)
			assert.False(t, ok, "an empty table must answer no backend")
			assert.Len(t, tab.Names, len(tt.backends))
		})
	}
}

func TestBalanceEqualWeights(t *testing.T) {
	for _, n := range []int{1, 2, 7, 10, 100, 655} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			m := DefaultSize
			tab := mustBuild(t, equalBackends(n), m)
			require.Equal(t, m, tab.Size())
			lo, hi := m/n, (m+n-1)/n
			maxCount := 0
			for i, c := range tab.Counts() {
				assert.True(t, c == lo || c == hi, "backend %d has %d slots, want %d or %d", i, c, lo, hi)
				maxCount = max(maxCount, c)
			}
			ratio := float64(maxCount) / (float64(m) / float64(n))
			if m >= 100*n {
				assert.LessOrEqual(t, ratio, 1.01)
			}
			t.Logf("N=%d M=%d: max/avg = %.4f", n, m, ratio)
		})
	}
}

func TestWeightsExact(t *testing.T) {
	tests := []struct {
		name    string
		weights []uint32
		m       int
	}{
		{"1:2", []uint32{1, 2}, 65537},
		{"1:2:3:4", []uint32{1, 2, 3, 4}, 65537},
		{"with zero", []uint32{5, 0, 1, 10}, 65537},
		{"skewed", append([]uint32{1000}, repeat(1, 99)...), 65537},
		{"small table", []uint32{3, 1, 1}, 13},
		{"huge weights", []uint32{1 << 31, 1<<31 - 1, 7}, 655373},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := make([]Backend, len(tt.weights))
			var total float64
			for i, w := range tt.weights {
				bs[i] = Backend{Name: fmt.Sprintf("b%d", i), Weight: w}
				total += float64(w)
			}
			tab := mustBuild(t, bs, tt.m)
			counts := tab.Counts()
			for i, w := range tt.weights {
				want := float64(tt.m) * float64(w) / total
				assert.InDelta(t, want, counts[i], 1.0, "backend %d weight %d", i, w)
				if w == 0 {
					assert.Zero(t, counts[i], "weight 0 owns no slot")
				}
			}
		})
	}
}

func repeat(v uint32, n int) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestDeterministicAcrossInputOrder(t *testing.T) {
	bs := equalBackends(50)
	bs[3].Weight, bs[17].Weight, bs[40].Weight = 3, 0, 2
	a := mustBuild(t, bs, 65537)

	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 5; trial++ {
		shuffled := append([]Backend(nil), bs...)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		b := mustBuild(t, shuffled, 65537)
		require.Equal(t, a.Size(), b.Size())
		change := Compare(a, b)
		assert.Zero(t, change.Moved, "trial %d: a shuffled input must give the identical table", trial)
	}
}

// TestGolden pins the exact first slots of one table. If it fails, the hash
// or the population algorithm changed: LB hosts running the old and the new
// version would disagree on every flow. Change it only on purpose, and say
// so in the release notes.
func TestGolden(t *testing.T) {
	bs := []Backend{{"10.0.0.1", 1}, {"10.0.0.2", 1}, {"10.0.0.3", 2}, {"10.0.0.4", 1}}
	tab := mustBuild(t, bs, 13)
	got := make([]string, tab.Size())
	for i, s := range tab.Slots {
		got[i] = tab.Names[s]
	}
	t.Logf("golden: %q", got)
	want := []string{"10.0.0.3", "10.0.0.1", "10.0.0.3", "10.0.0.2", "10.0.0.2", "10.0.0.3", "10.0.0.3", "10.0.0.2", "10.0.0.4", "10.0.0.4", "10.0.0.3", "10.0.0.1", "10.0.0.1"}
	assert.Equal(t, want, got)

	big := mustBuild(t, equalBackends(10), DefaultSize)
	first := make([]string, 16)
	for i := range first {
		first[i] = big.Names[big.Slots[i]]
	}
	t.Logf("golden big: %q", first)
	assert.Equal(t, []string{
		"10.1.0.6:80", "10.1.0.7:80", "10.1.0.7:80", "10.1.0.4:80", "10.1.0.3:80", "10.1.0.10:80", "10.1.0.9:80", "10.1.0.6:80",
		"10.1.0.4:80", "10.1.0.10:80", "10.1.0.8:80", "10.1.0.4:80", "10.1.0.7:80", "10.1.0.5:80", "10.1.0.1:80", "10.1.0.7:80",
	}, first)
}

func TestDisruption(t *testing.T) {
	const n, m = 1000, DefaultSize
	bs := equalBackends(n)
	before := mustBuild(t, bs, m)

	t.Run("remove one", func(t *testing.T) {
		after := mustBuild(t, bs[1:], m)
		c := Compare(before, after)
		own := c.Lost[bs[0].Name]
		collateral := c.Moved - own
		frac := float64(collateral) / m
		t.Logf("remove 1 of %d (M=%d): removed backend's slots %d, collateral %d slots = %.3f%% of the table",
			n, m, own, collateral, 100*frac)
		assert.LessOrEqual(t, frac, 0.01)
	})
	t.Run("remove 1%", func(t *testing.T) {
		removed := map[string]bool{}
		var kept []Backend
		for i, b := range bs {
			if i%100 == 0 {
				removed[b.Name] = true
				continue
			}
			kept = append(kept, b)
		}
		after := mustBuild(t, kept, m)
		c := Compare(before, after)
		own := 0
		for name, lost := range c.Lost {
			if removed[name] {
				own += lost
			}
		}
		frac := float64(c.Moved-own) / m
		t.Logf("remove %d of %d (M=%d): their slots %d, collateral %.3f%% of the table", len(removed), n, m, own, 100*frac)
		assert.LessOrEqual(t, frac, 0.03)
	})
	t.Run("add one", func(t *testing.T) {
		added := Backend{Name: "10.9.9.9:80", Weight: 1}
		after := mustBuild(t, append(append([]Backend(nil), bs...), added), m)
		c := Compare(before, after)
		gained := c.Gained[added.Name]
		collateral := c.Moved - gained
		t.Logf("add 1 to %d (M=%d): new backend took %d slots (1/(N+1) = %.0f), collateral %d slots = %.3f%%",
			n, m, gained, float64(m)/(n+1), collateral, 100*float64(collateral)/m)
		assert.InDelta(t, float64(m)/(n+1), gained, 1)
		assert.LessOrEqual(t, float64(collateral)/m, 0.01)
	})
}

func TestLookupAndCompare(t *testing.T) {
	tab := mustBuild(t, []Backend{{"a", 1}, {"b", 1}}, 13)
	for h := uint64(0); h < 30; h++ {
		idx, ok := tab.Lookup(h)
		require.True(t, ok)
		assert.Equal(t, int(tab.Slots[h%13]), idx)
	}
	empty := mustBuild(t, nil, 13)
	c := Compare(tab, empty)
	assert.Equal(t, 13, c.Moved)
	assert.Equal(t, 1.0, c.Fraction())
	assert.Equal(t, tab.Counts()[0], c.Lost["a"])
	assert.Empty(t, c.Gained)
	assert.Zero(t, Compare(empty, empty).Fraction())
}

func TestIsPrime(t *testing.T) {
	primes := []int{2, 3, 13, 251, 65537, 655373, MaxSize}
	for _, p := range primes {
		assert.True(t, IsPrime(p), "%d", p)
	}
	for _, c := range []int{-7, 0, 1, 4, 65535, 65536, 655371, 1 << 20} {
		assert.False(t, IsPrime(c), "%d", c)
	}
}

func FuzzBuild(f *testing.F) {
	f.Add([]byte{1, 2, 3}, uint8(0))
	f.Add([]byte{0, 0, 0}, uint8(1))
	f.Add([]byte{255, 1, 0, 7, 9}, uint8(2))
	sizes := []int{2, 13, 251, 1021}
	f.Fuzz(func(t *testing.T, weights []byte, sizeSel uint8) {
		if len(weights) > 64 {
			weights = weights[:64]
		}
		m := sizes[int(sizeSel)%len(sizes)]
		bs := make([]Backend, len(weights))
		var total float64
		positive := 0
		for i, w := range weights {
			bs[i] = Backend{Name: fmt.Sprintf("b%d", i), Weight: uint32(w)}
			total += float64(w)
			if w > 0 {
				positive++
			}
		}
		tab, err := Build(bs, m)
		if positive > m {
			require.ErrorIs(t, err, ErrSize)
			return
		}
		require.NoError(t, err)
		if positive == 0 {
			require.True(t, tab.Empty())
			return
		}
		require.Equal(t, m, tab.Size())
		counts := make([]int, len(bs))
		for _, s := range tab.Slots {
			require.Less(t, int(s), len(bs))
			require.NotZero(t, bs[s].Weight, "slot names a weight-0 backend")
			counts[s]++
		}
		for i, b := range bs {
			want := float64(m) * float64(b.Weight) / total
			require.InDelta(t, want, counts[i], 1.0, "backend %d", i)
		}
	})
}
