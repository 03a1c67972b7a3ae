package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"

	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/httpsig"
)

// maxAnswer caps the bytes read from one answer, as for JSON answers.
const maxAnswer = 64 << 20

// postBuckets sends one bucket fetch asking for the binary encoding
// (api.MediaTypeBuckets), which carries the same records as JSON without
// base64, and accepts either: a directory that does not offer it answers
// JSON. Like every read it is sent once, never retried.
func (c *Client) postBuckets(ctx context.Context, req api.BucketsRequest, cred *identity) (*api.BucketsResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, "POST", c.cfg.Server+api.PathBuckets, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", api.MediaTypeBuckets+", application/json;q=0.5")
	if err := httpsig.Sign(hr, body, cred.key, cred.der, c.cfg.Now()); err != nil {
		return nil, err
	}
	resp, err := c.http.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode/100 != 2 || mt != api.MediaTypeBuckets {
		var out api.BucketsResponse
		if err := decodeAnswer(resp, &out); err != nil {
			return nil, err
		}
		return &out, nil
	}
	b, err := readAnswer(resp)
	if err != nil {
		return nil, err
	}
	out, err := api.ParseBuckets(b)
	if err != nil {
		return nil, fmt.Errorf("client: malformed answer from directory: %w", err)
	}
	return out, nil
}

// readAnswer reads a body of at most maxAnswer bytes, in one allocation
// when the server states its length.
func readAnswer(resp *http.Response) ([]byte, error) {
	if n := resp.ContentLength; n >= 0 {
		if n > maxAnswer {
			return nil, fmt.Errorf("client: answer from directory exceeds %d bytes", maxAnswer)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxAnswer {
		return nil, fmt.Errorf("client: answer from directory exceeds %d bytes", maxAnswer)
	}
	return b, nil
}
