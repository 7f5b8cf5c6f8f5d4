// Package session signs and verifies the session cookie that says which
// user a browser is signed in as. The value is the user id, an expiry and
// a random nonce, with an HMAC-SHA256 over them under SECRET_KEY; nothing
// is stored on the server, so any web process with the key can read it.
// The same key seals other short-lived values the browser keeps for the
// app (Seal, Open), such as a sign-in's state and nonce.
package session

import (
	"crypto/hmac"
	"crypto/rand"
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

// Cookie returns a session cookie for userID valid for ttl. Each call
// gives a new value, even for the same user in the same second (a random
// nonce is signed with it), so that signing in always renews the cookie.
func (s *Signer) Cookie(userID int64, ttl time.Duration) *http.Cookie {
	exp := s.now().Add(ttl)
	payload := strconv.FormatInt(userID, 10) + "|" + strconv.FormatInt(exp.Unix(), 10) + "|" + rand.Text()
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
	idStr, rest, ok := strings.Cut(payload, "|")
	if !ok {
		return 0, false
	}
	// Cookies from before the nonce have none: "id|exp".
	expStr, _, _ := strings.Cut(rest, "|")
	id, err1 := strconv.ParseInt(idStr, 10, 64)
	exp, err2 := strconv.ParseInt(expStr, 10, 64)
	if err1 != nil || err2 != nil || id <= 0 || s.now().Unix() > exp {
		return 0, false
	}
	return id, true
}

// Clear returns a cookie that deletes the named cookie from the browser.
func (s *Signer) Clear(name string) *http.Cookie {
	return &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode}
}

// Seal returns a cookie named name holding value, signed and valid for
// ttl: the browser keeps it, but cannot change it or have it accepted
// past ttl, nor under another name (the name is signed too). The value
// is readable by the browser: seal nothing secret from the user.
func (s *Signer) Seal(name string, value []byte, ttl time.Duration) *http.Cookie {
	exp := s.now().Add(ttl)
	payload := strconv.FormatInt(exp.Unix(), 10) + "|" + base64.RawURLEncoding.EncodeToString(value)
	return &http.Cookie{
		Name:     name,
		Value:    base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + s.mac(name+"\x00"+payload),
		Path:     "/",
		Expires:  exp,
		HttpOnly: true,
		Secure:   s.secure,
		SameSite: http.SameSiteLaxMode,
	}
}

// Open returns the value of r's cookie name as Seal made it, if it is
// there, signed by this key for that name, and not expired.
func (s *Signer) Open(r *http.Request, name string) ([]byte, bool) {
	c, err := r.Cookie(name)
	if err != nil {
		return nil, false
	}
	enc, mac, ok := strings.Cut(c.Value, ".")
	if !ok {
		return nil, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return nil, false
	}
	payload := string(raw)
	if !hmac.Equal([]byte(mac), []byte(s.mac(name+"\x00"+payload))) {
		return nil, false
	}
	expStr, val, ok := strings.Cut(payload, "|")
	if !ok {
		return nil, false
	}
	exp, err := strconv.ParseInt(expStr, 10, 64)
	if err != nil || s.now().Unix() > exp {
		return nil, false
	}
	v, err := base64.RawURLEncoding.DecodeString(val)
	if err != nil {
		return nil, false
	}
	return v, true
}

func (s *Signer) mac(payload string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
