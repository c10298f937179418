//go:build !race

package sticky_test

const raceEnabled = false
