package oprf

import (
	"encoding/hex"
	"testing"
)

// TestProtocolVectors checks the derivation vectors published in
// docs/protocol.md, Appendix A, so the document cannot drift from the code.
func TestProtocolVectors(t *testing.T) {
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sk, err := ParsePrivateKey(unhex("145c79c108538421ac164ecbe131942136d5570b16d8bf41a24d4337da981e07"))
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(sk.Public().Bytes()); got != "c647bef38497bc6ec077c22af65b696efa43bff3b4a1975a3e8e0a1c5a79d631" {
		t.Errorf("pkS = %s", got)
	}
	y, err := NewEvaluator(sk).FullEvaluate([]byte("blindex lookup v1"), []byte("+14155550100"))
	if err != nil {
		t.Fatal(err)
	}
	idx, key, ps, rid := Index(y), RecordKey(y), Pseudonym(y), RecordID(y, "org.example.chat")
	for name, c := range map[string]struct {
		got  []byte
		want string
	}{
		"y":          {y, "c4352071758e31644d99c5da494a9ac8f3b313e49d24e4823efd32ef8b22a5050280a2dadadd54c103177f048d03b4d6c353330367d8642afeb3a6e7a17e93c7"},
		"index":      {idx[:], "dcebccae519242eddd4af6e27b46324ee35db1cbcbf7b644718e9d46efadc017"},
		"record key": {key[:], "64711047630431309a790e8e8435e530d3de89ce30b24c44f3bf14bcd2d40b81"},
		"pseudonym":  {ps[:], "4f66c91beceafd28db26c6bcddb720392d461f94a44c41b3f88108c030884fb5"},
		"record id":  {rid[:], "11d5627693dfa6c4b86883925f6468278093622ea9710b4afd65db491e1d89e4"},
	} {
		if got := hex.EncodeToString(c.got); got != c.want {
			t.Errorf("%s = %s, want %s", name, got, c.want)
		}
	}
}
