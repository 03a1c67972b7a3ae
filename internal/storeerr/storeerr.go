// Package storeerr holds the errors every blindex store returns, so that
// packages on either side of a store (ca, directory, httpapi) share them
// without importing each other.
package storeerr

import "errors"

var (
	ErrNotFound  = errors.New("store: not found")
	ErrConflict  = errors.New("store: conflicting row exists")
	ErrExhausted = errors.New("store: limit reached")
)
