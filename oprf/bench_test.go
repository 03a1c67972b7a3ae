package oprf

import (
	"fmt"
	"testing"
)

var benchSizes = []int{1, 10, 100, 1000}

func perElement(b *testing.B, n int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/element")
}

func BenchmarkEvaluate(b *testing.B) {
	ev := NewEvaluator(newTestKey(b))
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			_, blinded, err := Blind(testInputs(n))
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, _, err := ev.Evaluate(testInfo, blinded); err != nil {
					b.Fatal(err)
				}
			}
			perElement(b, n)
		})
	}
}

func BenchmarkFinalize(b *testing.B) {
	k := newTestKey(b)
	ev := NewEvaluator(k)
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			blinding, _, evaluated, proof := roundTrip(b, ev, testInputs(n))
			for b.Loop() {
				if _, err := blinding.Finalize(k.Public(), testInfo, evaluated, proof); err != nil {
					b.Fatal(err)
				}
			}
			perElement(b, n)
		})
	}
}
