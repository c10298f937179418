package main

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

var bareNumber = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

// explainFlagError puts a typed flag's refusal of its value in an
// operator's words. pflag reports the Go parser's own text
// (`strconv.ParseUint: parsing "70000": value out of range`, `time:
// missing unit in duration "5"`); this says what the flag takes. Other
// errors are returned as they are.
func explainFlagError(err error) error {
	// `xlb backend weight VIP ADDR -1`: pflag reads -1 as flags -1.
	var ne *pflag.NotExistError
	if errors.As(err, &ne) && bareNumber.MatchString(ne.GetSpecifiedShortnames()) {
		return fmt.Errorf("-%s: negative numbers are not accepted (weights, ports and counts are 0 or more)", ne.GetSpecifiedShortnames())
	}
	var ive *pflag.InvalidValueError
	if !errors.As(err, &ive) {
		return err
	}
	f, v := ive.GetFlag(), ive.GetValue()
	name := "--" + f.Name
	typ := f.Value.Type()
	switch {
	case typ == "duration" && bareNumber.MatchString(v):
		return fmt.Errorf("invalid %s %q: give a unit, e.g. %ss or %sms", name, v, v, v)
	case typ == "duration":
		return fmt.Errorf("invalid %s %q: not a duration such as 500ms, 30s or 5m", name, v)
	}
	var num *strconv.NumError
	if !errors.As(err, &num) {
		return err
	}
	bits := 64
	if i := strings.IndexAny(typ, "0123456789"); i > 0 {
		if b, err := strconv.Atoi(typ[i:]); err == nil {
			bits = b
		}
	}
	var lo, hi string
	switch {
	case strings.HasPrefix(typ, "uint"):
		lo, hi = "0", strconv.FormatUint(math.MaxUint64>>(64-bits), 10)
	case strings.HasPrefix(typ, "int"):
		lo, hi = strconv.FormatInt(math.MinInt64>>(64-bits), 10), strconv.FormatInt(math.MaxInt64>>(64-bits), 10)
	default:
		return err
	}
	bounds := " (" + lo + ".." + hi + ")"
	if bits == 64 {
		bounds = "" // no one types 19 digits: the flag's help says what fits
	}
	if errors.Is(num.Err, strconv.ErrRange) {
		return fmt.Errorf("invalid %s %q: out of range%s", name, v, bounds)
	}
	return fmt.Errorf("invalid %s %q: not a whole number%s", name, v, bounds)
}
