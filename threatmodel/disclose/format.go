package disclose

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// fmtInt writes n with thousands separators: 1,234,567.
func fmtInt[T ~int | ~int64 | ~uint64 | ~uint32](n T) string {
	s := strconv.FormatInt(int64(n), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var sb strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			sb.WriteByte(',')
		}
		sb.WriteRune(r)
	}
	if neg {
		return "-" + sb.String()
	}
	return sb.String()
}

// fmtBig writes a large count in words: "3.05 billion", "412,000".
func fmtBig(x float64) string {
	switch ax := math.Abs(x); {
	case ax >= 1e12:
		return fmt.Sprintf("%.3g trillion", x/1e12)
	case ax >= 1e9:
		return fmt.Sprintf("%.3g billion", x/1e9)
	case ax >= 1e6:
		return fmt.Sprintf("%.3g million", x/1e6)
	default:
		return fmtInt(int64(math.Round(x)))
	}
}

// fmtCompact writes an axis tick: 0, 250, 1.5k, 2M.
func fmtCompact(x float64) string {
	switch ax := math.Abs(x); {
	case ax >= 1e9:
		return strconv.FormatFloat(x/1e9, 'g', 3, 64) + "G"
	case ax >= 1e6:
		return strconv.FormatFloat(x/1e6, 'g', 3, 64) + "M"
	case ax >= 1e3:
		return strconv.FormatFloat(x/1e3, 'g', 3, 64) + "k"
	default:
		return strconv.FormatFloat(x, 'g', 4, 64)
	}
}

const (
	minute = 60.0
	hour   = 60 * minute
	day    = 24 * hour
	year   = 365.25 * day
)

// fmtDuration writes a duration given in seconds for a reader: "17 hours",
// "8,340 years".
func fmtDuration(sec float64) string {
	unit := func(v float64, name string) string {
		r := math.Round(v*10) / 10
		if r >= 100 {
			s := fmtInt(int64(math.Round(v)))
			if s == "1" {
				return "1 " + name
			}
			return s + " " + name + "s"
		}
		s := strconv.FormatFloat(r, 'f', -1, 64)
		if s == "1" {
			return "1 " + name
		}
		return s + " " + name + "s"
	}
	switch {
	case math.IsInf(sec, 1):
		return "never"
	case sec < 1:
		return "under a second"
	case sec < minute:
		return unit(sec, "second")
	case sec < hour:
		return unit(sec/minute, "minute")
	case sec < day:
		return unit(sec/hour, "hour")
	case sec < year:
		return unit(sec/day, "day")
	case sec < 1e6*year:
		return unit(sec/year, "year")
	default:
		return fmt.Sprintf("%.3g years", sec/year)
	}
}

func fmtPct(num, den int) string {
	if den == 0 {
		return "0%"
	}
	p := 100 * float64(num) / float64(den)
	if p > 0 && p < 0.1 {
		return "<0.1%"
	}
	return strconv.FormatFloat(p, 'f', 1, 64) + "%"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func sortBy[T any, K cmp.Ordered](s []T, key func(T) K) {
	slices.SortFunc(s, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
}
