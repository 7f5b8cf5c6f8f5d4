// Package session signs and verifies the session cookie that says which
// user a browser is signed in as. The value is the user id and an expiry,
// with an HMAC-SHA256 over both under SECRET_KEY; nothing is stored on the
// server, so any web process with the key can read it.
package session

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// CookieName is the session cookie's name.
const CookieName = "otj_session"

// MinKeyLen is the shortest SECRET_KEY accepted, in bytes.
const MinKeyLen = 32

// Signer issues and checks session cookies.
type Signer struct {
	key    []byte
	now    func() time.Time
	secure bool
}

// Option changes how a Signer makes its cookies.
type Option func(*Signer)

// Secure marks the cookies Secure when on, for an app served over HTTPS:
// the browser then never sends the session over plain HTTP. Off (the
// default), a plain-HTTP install can keep its users signed in.
func Secure(on bool) Option { return func(s *Signer) { s.secure = on } }

// NewSigner returns a Signer with key, which must be at least MinKeyLen bytes.
func NewSigner(key []byte, opts ...Option) (*Signer, error) {
	if len(key) < MinKeyLen {
		return nil, errors.New("secret key must be at least 32 bytes")
	}
	s := &Signer{key: key, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// SecureCookies reports whether the cookies are marked Secure, so that
// the web module can check it matches the scheme the app is served on.
func (s *Signer) SecureCookies() bool { return s.secure }

// Cookie returns a session cookie for userID valid for ttl.
func (s *Signer) Cookie(userID int64, ttl time.Duration) *http.Cookie {
	exp := s.now().Add(ttl)
	payload := strconv.FormatInt(userID, 10) + "|" + strconv.FormatInt(exp.Unix(), 10)
	return &http.Cookie{
		Name:     CookieName,
		Value:    base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + s.mac(payload),
		Path:     "/",
		Expires:  exp,
		HttpOnly: true,
		Secure:   s.secure,
		SameSite: http.SameSiteLaxMode,
	}
}

// UserID returns the signed-in user of r, if its cookie is valid.
func (s *Signer) UserID(r *http.Request) (int64, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return 0, false
	}
	enc, mac, ok := strings.Cut(c.Value, ".")
	if !ok {
		return 0, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return 0, false
	}
	payload := string(raw)
	if !hmac.Equal([]byte(mac), []byte(s.mac(payload))) {
		return 0, false
	}
	idStr, expStr, ok := strings.Cut(payload, "|")
	if !ok {
		return 0, false
	}
	id, err1 := strconv.ParseInt(idStr, 10, 64)
	exp, err2 := strconv.ParseInt(expStr, 10, 64)
	if err1 != nil || err2 != nil || id <= 0 || s.now().Unix() > exp {
		return 0, false
	}
	return id, true
}

func (s *Signer) mac(payload string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
