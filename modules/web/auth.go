package web

import (
	"context"
	"net/http"

	"github.com/otjhelper/otj/modules/activity"
)

type userKey struct{}

// authenticate puts the signed-in user in the request context, or shows
// how to sign in.
func (s *server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok, err := s.signedIn(r)
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			s.renderSignin(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, &u)))
	})
}

// signedIn is the user r is signed in as (DEV_AUTO_LOGIN_EMAIL's, or
// the session's), and false for none; the error is only for a failed
// lookup, not for a user that is gone.
func (s *server) signedIn(r *http.Request) (activity.User, bool, error) {
	var (
		u   activity.User
		err error
		ok  bool
	)
	if email := s.cfg.DevAutoLoginEmail; email != "" {
		u, err = s.cfg.Users.EnsureUser(r.Context(), email)
		ok = err == nil
	} else if id, signed := s.cfg.Sessions.UserID(r); signed {
		u, err = s.cfg.Users.UserByID(r.Context(), id)
		ok = err == nil
	}
	if err != nil && !isNotFound(err) {
		return u, false, err
	}
	return u, ok, nil
}

// currentUser is the signed-in user; authenticate guarantees one.
func currentUser(r *http.Request) *activity.User {
	u, _ := r.Context().Value(userKey{}).(*activity.User)
	return u
}

// signinData is what the sign-in page shows: the provider's button, or
// how a developer signs in without one.
type signinData struct{ Provider string }

func (s *server) renderSignin(w http.ResponseWriter, r *http.Request) {
	var d signinData
	if s.oidc != nil {
		d.Provider = s.oidc.cfg.providerName()
	}
	s.render(w, r, "signin", view{Title: "Sign in", Data: d})
}

// signinPage is GET /signin, where signing out leads.
func (s *server) signinPage(w http.ResponseWriter, r *http.Request) { s.renderSignin(w, r) }
