package record

// ValidCiphertextSize reports whether n is the length of a v2 sealed record
// in one of the size classes: 41 + class. A directory refuses other lengths,
// so that no client can (by bug or on purpose) upload a ciphertext whose
// length gives away what it holds. Legacy age lengths are refused too: new
// uploads are v2, and a directory only keeps serving the legacy records it
// already stores (Open still reads them).
func ValidCiphertextSize(n int) bool {
	for _, c := range SizeClasses {
		if n == envelopeOverhead+c {
			return true
		}
	}
	return false
}
