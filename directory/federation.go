package directory

import "blindex.dev/blindex/ca"

// misdirected refuses a write for a number this directory does not hold
// (Config.Holds): its owner publishes at the directory the federation map
// gives its number, where callers will look for it.
func (s *Server) misdirected(c *caller) error {
	if s.cfg.Holds == nil {
		return nil
	}
	if elsewhere, ok := s.cfg.Holds(c.number); !ok {
		return ca.Misdirected(elsewhere)
	}
	return nil
}
