package client

import "time"

// StoredIdentity returns the number and expiry of the credential stored in
// stateDir, without any network access: for "whoami", and for the federated
// client, which keeps one credential for all directories.
func StoredIdentity(stateDir string) (number string, expires time.Time, err error) {
	base := &Client{cfg: Config{StateDir: stateDir, CredentialDir: stateDir}}
	return base.Identity()
}
