package directory

import (
	"context"
	"errors"
	"fmt"

	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/httpapi"
)

// holders answers PathHolders: the holders of the caller's number under
// the current epoch's index, as the directory sees them.
func (s *Server) holders(ctx context.Context, c *caller, _ struct{}) (api.HoldersResponse, error) {
	if err := s.misdirected(c); err != nil {
		return api.HoldersResponse{}, err
	}
	hs, err := s.cfg.Store.Holders(ctx, c.index)
	if err != nil {
		return api.HoldersResponse{}, err
	}
	resp := api.HoldersResponse{Epoch: c.epoch, Holders: make([]api.HolderInfo, 0, len(hs))}
	for _, h := range hs {
		info := api.HolderInfo{KeyHash: h.KeyHash[:], FirstProof: h.FirstProof.UTC(), LastProof: h.LastProof.UTC(),
			Records: h.Records, You: h.KeyHash == c.keyHash}
		if h.OnNotice() {
			until := h.NoticeUntil.UTC()
			info.NoticeUntil = &until
		}
		resp.Holders = append(resp.Holders, info)
	}
	return resp, nil
}

// evict answers PathHoldersEvict: a holder with a fresh SMS proof retires
// another holder of its number at once (DecideEvict), in the current epoch
// and, during an overlap, the previous one.
func (s *Server) evict(ctx context.Context, c *caller, req api.EvictRequest) (api.EvictResponse, error) {
	if err := s.misdirected(c); err != nil {
		return api.EvictResponse{}, err
	}
	if len(req.KeyHash) != 32 {
		return api.EvictResponse{}, fmt.Errorf("%w: key_hash is 32 bytes", httpapi.ErrBadRequest)
	}
	target := [32]byte(req.KeyHash)
	now := s.cfg.Now()
	e, err := s.epochs(ctx)
	if err != nil {
		return api.EvictResponse{}, err
	}
	var resp api.EvictResponse
	for i, epoch := range []int{e.Current, e.announced()} {
		if epoch < 0 {
			continue
		}
		_, idx, err := s.at(c, epoch)
		if err != nil {
			return api.EvictResponse{}, err
		}
		ch, err := s.cfg.Store.ChangeHolders(ctx, epoch, idx, func(hs []Holder) (HolderChange, error) {
			ch, err := DecideEvict(hs, c.keyHash, target, now)
			if i > 0 {
				ch.Entries = nil // logged once, for the current epoch
			}
			return ch, err
		}, now)
		switch {
		case i > 0 && (errors.Is(err, ErrNotHolder) || errors.Is(err, ErrStaleProof) || errors.Is(err, ErrSenior)):
			continue // the previous epoch's index may lack the target
		case errors.Is(err, ErrStaleProof):
			return api.EvictResponse{}, errStaleProof
		case errors.Is(err, ErrNotHolder):
			return api.EvictResponse{}, errNotHolder
		case errors.Is(err, ErrSenior):
			return api.EvictResponse{}, errSenior
		case err != nil:
			return api.EvictResponse{}, err
		}
		s.holdersChanged(c, ch)
		if i == 0 {
			for _, h := range ch.Retire {
				if h.KeyHash == target {
					resp.Retired = h.Records
				}
			}
		}
	}
	s.log.Info("holder evicted", "caller", s.fingerprint(c), "records_retired", resp.Retired)
	return resp, nil
}
