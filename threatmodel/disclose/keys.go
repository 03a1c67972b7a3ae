package disclose

import (
	"bytes"
	"encoding/pem"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"blindex.dev/blindex/credential"
	"blindex.dev/blindex/directory/datadir"
	"blindex.dev/blindex/internal/keyfile"
	"blindex.dev/blindex/oprf"
)

// openKeys decrypts the key files in memory to show what their holder can
// do. It decrypts nothing from the database and never writes a key out; the
// only evaluations it makes are on inputs that are not phone numbers, to
// time them.
func openKeys(cfg Config, recordedPub []byte) *KeyFindings {
	k := &KeyFindings{IdentityPath: cfg.IdentityPath, Cores: runtime.NumCPU()}
	id, _, err := keyfile.LoadIdentity(cfg.IdentityPath)
	if err != nil {
		k.Err = "the age identity could not be read: " + err.Error()
		return k
	}
	oprfBytes, err := keyfile.Read(filepath.Join(cfg.DataDir, datadir.OPRFKeyFile), id)
	if err != nil {
		k.Err = "the OPRF key file does not open with this identity: " + err.Error()
		return k
	}
	key, err := oprf.ParsePrivateKey(oprfBytes)
	clear(oprfBytes)
	if err != nil {
		k.Err = "the OPRF key file holds no valid key: " + err.Error()
		return k
	}
	k.OPRFMatches = bytes.Equal(key.Public().Bytes(), recordedPub)
	if caKey, err := keyfile.Read(filepath.Join(cfg.DataDir, datadir.CAKeyFile), id); err == nil {
		if certPEM, err := os.ReadFile(filepath.Join(cfg.DataDir, datadir.CACertFile)); err == nil {
			if block, _ := pem.Decode(certPEM); block != nil {
				_, err := credential.NewCA(block.Bytes, caKey)
				k.CAKeyOK = err == nil
			}
		}
		clear(caKey)
	}
	// What one guess costs the key holder: a full evaluation, one core.
	ev := oprf.NewEvaluator(key)
	info := []byte(defaultInfo)
	for i := range 10 { // warm up
		ev.FullEvaluate(info, timingInput(-1-i))
	}
	start := time.Now()
	for i := range keyTimingEvaluations {
		if _, err := ev.FullEvaluate(info, timingInput(i)); err != nil {
			k.Err = "evaluation failed: " + err.Error()
			return k
		}
	}
	k.Evaluations = keyTimingEvaluations
	k.PerEval = time.Since(start) / keyTimingEvaluations
	return k
}
