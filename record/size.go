package record

// ValidCiphertextSize reports whether n is the length of a sealed record in
// one of the size classes. A directory refuses other lengths, so that no
// client can (by bug or on purpose) upload a ciphertext whose length gives
// away what it holds.
func ValidCiphertextSize(n int) bool {
	for _, c := range SizeClasses {
		// age: header, 16-byte stream nonce, one chunk of c bytes plus its tag.
		if n == headerSize+16+c+16 {
			return true
		}
	}
	return false
}
