package disclose

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// A Space is an estimate of how many valid numbers a region's numbering plan
// holds: what an enumerator must evaluate to walk the whole country.
type Space struct {
	Region      string // CLDR region, such as "US"
	CountryCode int
	Samples     int // random national numbers tried per length
	Lengths     []LengthEstimate
}

// A LengthEstimate is the sampling result for one national-number length.
type LengthEstimate struct {
	Length int
	Valid  int // samples valid for the region (libphonenumber)
	Mobile int // valid samples of type MOBILE or FIXED_LINE_OR_MOBILE
}

// spaceSeed fixes the sampling, so that reports are reproducible.
const spaceSeed = 0x626c696e646578 // "blindex"

// sampleChunk is the unit of work; each chunk has its own seeded stream, so
// the estimate does not depend on how many goroutines ran.
const sampleChunk = 10_000

// EstimateSpace estimates the count of valid numbers for region by
// deterministic Monte-Carlo sampling: for each possible national-number
// length in libphonenumber's metadata for the region, it draws samples
// uniformly random national numbers of that length (fixed seed) and counts
// those valid for the region; the fraction times 10^length estimates the
// valid numbers of that length.
func EstimateSpace(region string, samples int) (*Space, error) {
	region = strings.ToUpper(region)
	if samples < 1 {
		return nil, errors.New("disclose: samples must be at least 1")
	}
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return nil, err
	}
	var md *phonenumbers.PhoneMetadata
	for _, m := range coll.GetMetadata() {
		if m.GetId() == region {
			md = m
			break
		}
	}
	if md == nil || !phonenumbers.GetSupportedRegions()[region] {
		return nil, fmt.Errorf("%w %q: give a CLDR region code that libphonenumber knows, such as US, GB or DE", ErrRegion, region)
	}
	sp := &Space{Region: region, CountryCode: int(md.GetCountryCode()), Samples: samples}
	for _, l := range md.GetGeneralDesc().GetPossibleLength() {
		// E.164 allows 15 digits with the country code; metadata lengths
		// stay well inside what a uint64 national number holds.
		if l < 1 || l > 17 {
			continue
		}
		sp.Lengths = append(sp.Lengths, sampleLength(region, int32(sp.CountryCode), int(l), samples))
	}
	if len(sp.Lengths) == 0 {
		return nil, fmt.Errorf("%w %q: no possible number lengths in the metadata", ErrRegion, region)
	}
	return sp, nil
}

func sampleLength(region string, cc int32, length, samples int) LengthEstimate {
	h := fnv.New64a()
	h.Write([]byte(region))
	seed := h.Sum64() ^ spaceSeed
	limit := uint64(math.Pow10(length))
	chunks := (samples + sampleChunk - 1) / sampleChunk
	type result struct{ valid, mobile int }
	results := make([]result, chunks)
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(runtime.GOMAXPROCS(0), chunks) {
		wg.Go(func() {
			for c := range next {
				rng := rand.New(rand.NewPCG(seed, uint64(length)<<32|uint64(c)))
				n := min(sampleChunk, samples-c*sampleChunk)
				var r result
				for range n {
					v := rng.Uint64N(limit)
					pn := &phonenumbers.PhoneNumber{CountryCode: &cc, NationalNumber: &v}
					// Leading zeros are part of the national number in some
					// plans (Italy); libphonenumber keeps them as a count.
					if z := int32(length - len(strconv.FormatUint(v, 10))); z > 0 {
						yes := true
						pn.ItalianLeadingZero, pn.NumberOfLeadingZeros = &yes, &z
					}
					if !phonenumbers.IsValidNumberForRegion(pn, region) {
						continue
					}
					r.valid++
					if t := phonenumbers.GetNumberType(pn); t == phonenumbers.MOBILE || t == phonenumbers.FIXED_LINE_OR_MOBILE {
						r.mobile++
					}
				}
				results[c] = r
			}
		})
	}
	for c := range chunks {
		next <- c
	}
	close(next)
	wg.Wait()
	e := LengthEstimate{Length: length}
	for _, r := range results {
		e.Valid += r.valid
		e.Mobile += r.mobile
	}
	return e
}

// estimate returns count/samples × 10^length and its standard error.
func estimate(count, samples, length int) (est, stderr float64) {
	p := float64(count) / float64(samples)
	size := math.Pow10(length)
	return p * size, size * math.Sqrt(p*(1-p)/float64(samples))
}

// Estimate is the estimated count of valid numbers of this length and its
// standard error.
func (l LengthEstimate) Estimate(samples int) (float64, float64) {
	return estimate(l.Valid, samples, l.Length)
}

// UpperBound95 is, for a length where no sample was valid, the count below
// which the true number lies with 95% confidence (the rule of three).
func (l LengthEstimate) UpperBound95(samples int) float64 {
	return 3 / float64(samples) * math.Pow10(l.Length)
}

// Valid returns the estimated count of valid numbers over all lengths and
// its standard error.
func (s *Space) Valid() (float64, float64) {
	return s.total(func(l LengthEstimate) int { return l.Valid })
}

// Mobile returns the estimated count of valid numbers that are mobile or may
// be (FIXED_LINE_OR_MOBILE), and its standard error: the space an enumerator
// of messaging users would walk.
func (s *Space) Mobile() (float64, float64) {
	return s.total(func(l LengthEstimate) int { return l.Mobile })
}

func (s *Space) total(count func(LengthEstimate) int) (float64, float64) {
	var sum, variance float64
	for _, l := range s.Lengths {
		e, se := estimate(count(l), s.Samples, l.Length)
		sum += e
		variance += se * se
	}
	return sum, math.Sqrt(variance)
}
