package maglev

// Change describes how a table changed: how many slots name a different
// backend, and per backend name how many slots it gained or lost.
type Change struct {
	Size   int            // slots compared (the larger of the two sizes)
	Moved  int            // slots whose backend differs
	Gained map[string]int // backend name → slots gained
	Lost   map[string]int // backend name → slots lost
}

// Fraction is Moved/Size, 0 for two empty tables.
func (c Change) Fraction() float64 {
	if c.Size == 0 {
		return 0
	}
	return float64(c.Moved) / float64(c.Size)
}

// Compare reports what changed from old to new. Tables of different sizes
// are compared slot by slot over the larger size, a missing slot counting as
// owned by nobody; an empty table owns nothing.
func Compare(old, new Table) Change {
	size := max(len(old.Slots), len(new.Slots))
	c := Change{Size: size, Gained: map[string]int{}, Lost: map[string]int{}}
	for i := 0; i < size; i++ {
		var a, b string
		if i < len(old.Slots) {
			a = old.Names[old.Slots[i]]
		}
		if i < len(new.Slots) {
			b = new.Names[new.Slots[i]]
		}
		if a == b {
			continue
		}
		c.Moved++
		if a != "" {
			c.Lost[a]++
		}
		if b != "" {
			c.Gained[b]++
		}
	}
	return c
}
