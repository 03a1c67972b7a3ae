package directory_test

import (
	"errors"
	"testing"
	"time"

	"blindex.dev/blindex/directory"
)

func TestTokenBucket(t *testing.T) {
	t0 := time.UnixMilli(1_750_000_000_000)
	b := directory.TokenBucket{Start: 4, Capacity: 10, RefillPerSecond: 2}
	if l := b.New(t0); l.Tokens != 4 || !l.Updated.Equal(t0) {
		t.Fatalf("New = %+v, want 4 tokens at t0", l)
	}
	tests := []struct {
		name    string
		l       directory.TokenLevel
		delta   float64
		now     time.Time
		want    directory.TokenLevel
		wantErr error
	}{
		{"spend", directory.TokenLevel{Tokens: 4, Updated: t0}, -3, t0,
			directory.TokenLevel{Tokens: 1, Updated: t0}, nil},
		{"spend it all", directory.TokenLevel{Tokens: 4, Updated: t0}, -4, t0,
			directory.TokenLevel{Tokens: 0, Updated: t0}, nil},
		{"refill by the millisecond", directory.TokenLevel{Tokens: 1, Updated: t0}, -1, t0.Add(1500 * time.Millisecond),
			directory.TokenLevel{Tokens: 3, Updated: t0.Add(1500 * time.Millisecond)}, nil},
		{"refill within a millisecond: none", directory.TokenLevel{Tokens: 1, Updated: t0}, 0, t0.Add(time.Millisecond - 1),
			directory.TokenLevel{Tokens: 1, Updated: t0}, nil},
		{"refill capped", directory.TokenLevel{Tokens: 9, Updated: t0}, -1, t0.Add(time.Hour),
			directory.TokenLevel{Tokens: 9, Updated: t0.Add(time.Hour)}, nil},
		{"addition capped", directory.TokenLevel{Tokens: 9, Updated: t0}, 5, t0,
			directory.TokenLevel{Tokens: 10, Updated: t0}, nil},
		{"clock back: no refill, Updated stays", directory.TokenLevel{Tokens: 2, Updated: t0}, 1, t0.Add(-time.Hour),
			directory.TokenLevel{Tokens: 3, Updated: t0}, nil},
		{"overspend: the refilled level", directory.TokenLevel{Tokens: 1, Updated: t0}, -5, t0.Add(time.Second),
			directory.TokenLevel{Tokens: 3, Updated: t0}, directory.ErrExhausted},
		{"overspend, over capacity", directory.TokenLevel{Tokens: 12, Updated: t0}, -11, t0,
			directory.TokenLevel{Tokens: 10, Updated: t0}, directory.ErrExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := b.Add(tt.l, tt.delta, tt.now)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got.Tokens != tt.want.Tokens || !got.Updated.Equal(tt.want.Updated) {
				t.Errorf("Add = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestTokenBucketEmpty: a bucket without refill that starts empty holds
// only what is added to it.
func TestTokenBucketEmpty(t *testing.T) {
	t0 := time.UnixMilli(1_750_000_000_000)
	b := directory.TokenBucket{Capacity: 5}
	l := b.New(t0)
	if _, err := b.Add(l, -1, t0.Add(time.Hour)); !errors.Is(err, directory.ErrExhausted) {
		t.Fatalf("spend from a new empty bucket: %v, want ErrExhausted", err)
	}
	l, err := b.Add(l, 2, t0)
	if err != nil || l.Tokens != 2 {
		t.Fatalf("grant = %+v, %v", l, err)
	}
	if l, err := b.Add(l, -2, t0.Add(time.Hour)); err != nil || l.Tokens != 0 {
		t.Errorf("spend the grant = %+v, %v", l, err)
	}
}
