package main

import (
	"encoding/json"
	"io"
)

// printJSON writes v as indented JSON: the --json form of every command.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
