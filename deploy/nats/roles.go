// Package natsroles is OTJ Helper's NATS roles, as roles.conf beside it
// states them: the one file every NATS server of the app takes its users'
// permissions from. compose.yaml's cluster includes the file, the
// embedded server compiles it in through this package, and the tests
// load it into the servers they run.
package natsroles

import (
	_ "embed"
	"fmt"
	"strconv"

	"github.com/nats-io/nats-server/v2/server"
)

// Conf is roles.conf, a nats-server configuration fragment: the
// permission blocks of the roles and the users that have them, whose
// passwords it reads from the variables named by PasswordVars.
//
//go:embed roles.conf
var Conf string

// The roles' user names.
const (
	// Web is app web's everyday connection, and the operator commands'.
	Web = "otj-web"
	// Worker is app worker's.
	Worker = "otj-worker"
	// Maint is app web's maintenance connection: stream set-up at start,
	// and erasure.
	Maint = "otj-maint"
)

// Roles are the user names, in the order Users returns them.
var Roles = []string{Web, Worker, Maint}

// PasswordVars name the environment variable each role's password is
// read from when nats-server loads roles.conf itself.
var PasswordVars = map[string]string{Web: "NATS_WEB_PASSWORD", Worker: "NATS_WORKER_PASSWORD", Maint: "NATS_MAINT_PASSWORD"}

// Users parses Conf as nats-server does, with the given password for each
// role, and returns its users with their permissions. A role without a
// password is an error.
func Users(passwords map[string]string) ([]*server.User, error) {
	head := ""
	for _, role := range Roles {
		p := passwords[role]
		if p == "" {
			return nil, fmt.Errorf("nats roles: no password for %s", role)
		}
		// A variable defined in the file is found before the
		// environment's: the passwords stay out of the process's
		// environment.
		head += PasswordVars[role] + " = " + strconv.Quote(p) + "\n"
	}
	var o server.Options
	if err := o.ProcessConfigString(head + Conf); err != nil {
		return nil, fmt.Errorf("nats roles: roles.conf: %w", err)
	}
	byName := map[string]*server.User{}
	for _, u := range o.Users {
		byName[u.Username] = u
	}
	users := make([]*server.User, 0, len(Roles))
	for _, role := range Roles {
		u, ok := byName[role]
		if !ok || u.Password != passwords[role] {
			return nil, fmt.Errorf("nats roles: roles.conf has no user %s with its password", role)
		}
		users = append(users, u)
	}
	return users, nil
}
