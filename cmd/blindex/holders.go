package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"
)

func cmdHolders(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("holders", "holders [--json] [--evict KEYHASH]", `
Lists the keys that hold your number at the directory, as it sees them: every
key that proved the number by SMS (each app and each device has its own),
with its first and latest proof, its records, and whether it is on notice
and until when. This device's key is marked "you".

A key on notice was outproved: another key proved the number later. Its
records are hidden until it proves the number again (blindex verify), and it
is retired at the deadline. A key you do not recognise got an SMS code for
your number: prove the number again, then evict it at once:

  blindex verify start +14155550100 && blindex verify confirm CODE
  blindex holders --evict 3f2a...

Evicting needs a fresh proof: the directory allows it only within 10 minutes
of this key's own SMS verification, and not while this key is on notice. A
key may evict only keys that joined the number after it, so a hijacker's key,
which joins last, can evict nobody. The evicted key's records are deleted
and the key is revoked; the eviction is logged, and the other holders'
monitors see it.`, stderr)
	cf := addClientFlags(fs)
	asJSON := fs.Bool("json", false, "print the holders (or the eviction) as JSON")
	evict := fs.String("evict", "", "retire the holder with this key `hash` (hex, as listed) at once")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if *evict != "" {
		key, err := hex.DecodeString(strings.TrimSpace(*evict))
		if err != nil || len(key) != sha256.Size {
			return fmt.Errorf("--evict wants a key hash of 64 hex digits, as blindex holders lists it")
		}
		n, err := c.Evict(ctx, [32]byte(key))
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, struct {
				Evicted string `json:"evicted"`
				Retired int    `json:"records_retired"`
			}{hex.EncodeToString(key), n})
		}
		fmt.Fprintf(stdout, "Evicted %s: its key is revoked, and its %d records were deleted.\n", hex.EncodeToString(key), n)
		return nil
	}
	hs, err := c.Holders(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		type holderJSON struct {
			KeyHash     string     `json:"key_hash"`
			FirstProof  time.Time  `json:"first_proof"`
			LastProof   time.Time  `json:"last_proof"`
			NoticeUntil *time.Time `json:"notice_until,omitempty"`
			Records     int        `json:"records"`
			You         bool       `json:"you"`
		}
		out := []holderJSON{}
		for _, h := range hs {
			j := holderJSON{KeyHash: hex.EncodeToString(h.KeyHash[:]), FirstProof: h.FirstProof, LastProof: h.LastProof, Records: h.Records, You: h.You}
			if h.OnNotice() {
				j.NoticeUntil = &h.NoticeUntil
			}
			out = append(out, j)
		}
		return printJSON(stdout, struct {
			Holders []holderJSON `json:"holders"`
		}{out})
	}
	for _, h := range hs {
		fmt.Fprintf(stdout, "%s", hex.EncodeToString(h.KeyHash[:]))
		if h.You {
			fmt.Fprint(stdout, "  (you)")
		}
		fmt.Fprintf(stdout, "\n  proved %s, first %s, %d records\n", h.LastProof.Local().Format(time.DateTime), h.FirstProof.Local().Format(time.DateTime), h.Records)
		if h.OnNotice() {
			fmt.Fprintf(stdout, "  ON NOTICE until %s: records hidden; retired then unless it proves the number again\n", h.NoticeUntil.Local().Format(time.DateTime))
		}
	}
	return nil
}
