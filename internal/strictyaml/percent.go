package strictyaml

import (
	"fmt"
	"strconv"
	"strings"
)

// ParsePercent reads a share written as a whole percentage with its sign,
// "50%", within lo..hi. The sign is required so that a count ("2") is
// never taken for a share: the two mean very different things in a pool
// of 40.
func ParsePercent(s string, lo, hi int) (int, error) {
	num, ok := strings.CutSuffix(strings.TrimSpace(s), "%")
	if !ok {
		return 0, fmt.Errorf("%q is not a percentage such as 50%%", s)
	}
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole percentage such as 50%%", s)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%s is not within %d%%..%d%%", s, lo, hi)
	}
	return n, nil
}
