package natsroles

import (
	"strings"
	"testing"
)

// TestUsers loads roles.conf with passwords given, as the embedded
// server does: every role comes back with its own password and the
// permissions of its block.
func TestUsers(t *testing.T) {
	pw := map[string]string{Web: "web-pass-0123456789", Worker: `wo"rker\pass-0123`, Maint: "maint-pass-0123456789"}
	users, err := Users(pw)
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range users {
		if u.Username != Roles[i] || u.Password != pw[u.Username] || u.Permissions == nil || u.Permissions.Publish == nil {
			t.Errorf("user %d: %s with password %q and permissions %+v", i, u.Username, u.Password, u.Permissions)
		}
	}
	if allow := strings.Join(users[1].Permissions.Publish.Allow, " "); strings.Contains(allow, "tasks.>") || strings.Contains(allow, "enqueued") {
		t.Errorf("the worker may publish %s", allow)
	}
	if _, err := Users(map[string]string{Web: "x"}); err == nil {
		t.Error("Users without every password: no error")
	}
}
