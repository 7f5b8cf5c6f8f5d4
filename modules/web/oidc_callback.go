package web

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/otjhelper/otj/platform/session"
)

// idClaims are the ID token's claims sign-in reads.
type idClaims struct {
	Email string `json:"email"`
	// Verified is email_verified, which some providers send as the
	// string "true": either counts.
	Verified json.RawMessage `json:"email_verified"`
}

func (c idClaims) verified() bool {
	v := strings.Trim(string(c.Verified), `"`)
	return v == "true"
}

// callback completes a sign-in: the state must be the one the sign-in
// cookie holds (which is then deleted, so it serves once), the code is
// exchanged with its PKCE verifier, and the ID token must be the
// provider's, for this client, with the cookie's nonce and a verified,
// admitted email. The user then gets a new session cookie.
func (s *server) callback(w http.ResponseWriter, r *http.Request) {
	raw, ok := s.cfg.Sessions.Open(r, oidcCookie)
	http.SetCookie(w, s.cookie(r, s.cfg.Sessions.Clear(oidcCookie)))
	var st signinState
	if !ok || json.Unmarshal(raw, &st) != nil || st.State == "" {
		s.badSignin(w, r, "no valid sign-in cookie")
		return
	}
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(st.State)) != 1 {
		s.badSignin(w, r, "state does not match")
		return
	}
	if e := q.Get("error"); e != "" {
		s.log.InfoContext(r.Context(), "provider did not sign in", "error", e)
		s.denied(w, r, "The sign-in provider did not sign you in. Please try again.")
		return
	}
	prov, err := s.oidc.get(r.Context())
	if err != nil {
		s.providerDown(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(s.oidc.ctx(r.Context()), s.oidc.cfg.Timeout)
	defer cancel()
	tok, err := s.oidc.oauth2(prov).Exchange(ctx, q.Get("code"), oauth2.VerifierOption(st.Verifier))
	if err != nil {
		s.badSignin(w, r, "code exchange failed", "err", err)
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := prov.Verifier(&oidc.Config{ClientID: s.oidc.cfg.ClientID}).Verify(ctx, rawID)
	if err != nil {
		s.badSignin(w, r, "ID token invalid", "err", err)
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 {
		s.badSignin(w, r, "nonce does not match")
		return
	}
	var c idClaims
	if err := idt.Claims(&c); err != nil || c.Email == "" {
		s.badSignin(w, r, "ID token has no email", "err", err)
		return
	}
	if !c.verified() {
		s.denied(w, r, "Your email address is not verified by "+s.oidc.cfg.providerName()+", so you cannot sign in with it.")
		return
	}
	if !s.oidc.cfg.Allowed.Admits(c.Email) {
		s.log.InfoContext(r.Context(), "sign-in denied: not on ALLOWED_EMAILS", "email", c.Email)
		s.denied(w, r, "The address "+c.Email+" is not allowed to use OTJ Helper. Ask your training provider to add it.")
		return
	}
	u, err := s.cfg.Users.EnsureUser(r.Context(), c.Email)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.log.InfoContext(r.Context(), "signed in", "user_id", u.ID)
	// A new cookie at every sign-in, whatever the browser had before.
	http.SetCookie(w, s.cookie(r, s.cfg.Sessions.Cookie(u.ID, s.cfg.SessionTTL)))
	http.Redirect(w, r, "/tasks/", http.StatusSeeOther)
}

// denied shows the 403 page of someone the app does not let in.
func (s *server) denied(w http.ResponseWriter, r *http.Request, msg string) {
	w.WriteHeader(http.StatusForbidden)
	s.render(w, r, "denied", view{Title: "Not allowed", Data: msg})
}

// logout ends the session: its cookie is deleted, and the browser goes
// back to the sign-in page.
func (s *server) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, s.cookie(r, s.cfg.Sessions.Clear(session.CookieName)))
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

// cookie marks c Secure when r came over HTTPS: always when BaseURL is
// https (the signer then makes Secure cookies), and when a trusted proxy
// says so in X-Forwarded-Proto (TrustProxyHeaders).
func (s *server) cookie(r *http.Request, c *http.Cookie) *http.Cookie {
	if s.cfg.TrustProxyHeaders && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		c.Secure = true
	}
	return c
}
