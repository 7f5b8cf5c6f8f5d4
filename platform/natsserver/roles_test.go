package natsserver_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/otjhelper/otj/platform/natsserver"
)

// A server with roles admits a client as the role whose token, or user
// and password, it presents, with that role's permissions, and refuses
// any other credential.
func TestRolesAdmitEachRoleWithItsRights(t *testing.T) {
	const readerToken, writerPass = "reader-token-0123456789abcdef", "writer-pass-0123456789abcdef"
	reader := &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{"allowed.>"}}}
	s := start(t, natsserver.Config{Listen: "127.0.0.1:0", Auth: natsserver.Auth{Roles: []natsserver.Role{
		{Name: "reader", Token: readerToken, Permissions: reader},
		{Name: "writer", User: "w", Password: writerPass},
	}}})
	url := s.ClientURL()

	violated := make(chan error, 4)
	nc, err := nats.Connect(url, nats.Token(readerToken),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violated <- err }))
	if err != nil {
		t.Fatalf("the reader's token: %v", err)
	}
	defer nc.Close()
	if err := nc.Publish("denied.x", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-violated:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("publish beyond the reader's rights: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the reader published beyond its rights")
	}
	if w, err := nats.Connect(url, nats.UserInfo("w", writerPass)); err != nil {
		t.Errorf("the writer's user and password: %v", err)
	} else {
		w.Close()
	}
	for name, opt := range map[string]nats.Option{
		"wrong token":            nats.Token("not-a-role-0123456789abcdef"),
		"writer's password only": nats.Token(writerPass),
		"reader's token as user": nats.UserInfo("reader", readerToken),
	} {
		if c, err := nats.Connect(url, opt); err == nil {
			c.Close()
			t.Errorf("%s: admitted", name)
		} else if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("%s: %v, want an authorization violation", name, err)
		}
	}
}
