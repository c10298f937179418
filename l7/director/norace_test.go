//go:build !race

package director_test

const raceEnabled = false
