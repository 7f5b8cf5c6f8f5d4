package natsserver

import (
	"crypto/subtle"

	"github.com/nats-io/nats-server/v2/server"
)

// roleAuth admits a client as the first role whose credential it
// presents, with that role's permissions. nats-server admits either one
// token or a list of users, not both, and a token carries no
// permissions: this is how one server gives workers a token of their own,
// and keeps a token set in NATS_TOKEN working, with less than every right.
type roleAuth []Role

// Check implements server.Authentication.
func (roles roleAuth) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	for _, r := range roles {
		token := r.Token != "" && o.Token != "" && equal(o.Token, r.Token)
		user := r.User != "" && o.Username == r.User && equal(o.Password, r.Password)
		if token || user {
			c.RegisterUser(&server.User{Username: r.Name, Permissions: r.Permissions})
			return true
		}
	}
	return false
}

// equal compares secrets in time that does not depend on where they
// differ.
func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
