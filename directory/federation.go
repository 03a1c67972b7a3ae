package directory

import "blindex.dev/blindex/ca"

// holds reports whether this directory holds number (Config.Holds; every
// number without it), and if not, the directory that does, if known.
func (s *Server) holds(number string) (elsewhere string, ok bool) {
	if s.cfg.Holds == nil {
		return "", true
	}
	return s.cfg.Holds(number)
}

// misdirected refuses a write for a number this directory does not hold
// (Config.Holds): its owner publishes at the directory the federation map
// gives its number, where callers will look for it.
func (s *Server) misdirected(c *caller) error {
	if elsewhere, ok := s.holds(c.number); !ok {
		return ca.Misdirected(elsewhere)
	}
	return nil
}
