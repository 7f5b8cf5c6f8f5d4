package session

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestSigner(t *testing.T) {
	key := []byte(strings.Repeat("k", MinKeyLen))
	s, err := NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewSigner([]byte(strings.Repeat("x", MinKeyLen)))
	good := s.Cookie(42, time.Hour)
	expired := s.Cookie(42, -time.Minute)
	tampered := *good
	tampered.Value = strings.Replace(good.Value, good.Value[:4], "NDMx", 1) // "431|..." under the old MAC

	tests := []struct {
		name   string
		signer *Signer
		cookie string
		wantID int64
		wantOK bool
	}{
		{"valid", s, good.Value, 42, true},
		{"expired", s, expired.Value, 0, false},
		{"other key", other, good.Value, 0, false},
		{"tampered payload", s, tampered.Value, 0, false},
		{"no dot", s, "abc", 0, false},
		{"garbage", s, "!!.??", 0, false},
		{"empty", s, "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.cookie != "" {
				r.Header.Set("Cookie", CookieName+"="+tt.cookie)
			}
			id, ok := tt.signer.UserID(r)
			if id != tt.wantID || ok != tt.wantOK {
				t.Fatalf("UserID = %d, %v; want %d, %v", id, ok, tt.wantID, tt.wantOK)
			}
		})
	}
	if _, err := NewSigner([]byte("short")); err == nil {
		t.Error("short key accepted")
	}
}

// Behind HTTPS the cookie is Secure, so the browser never sends it over
// plain HTTP; by default it is not, or a plain-HTTP install could not
// sign in at all.
func TestSecureCookies(t *testing.T) {
	key := []byte(strings.Repeat("k", MinKeyLen))
	for _, secure := range []bool{false, true} {
		s, err := NewSigner(key, Secure(secure))
		if err != nil {
			t.Fatal(err)
		}
		c := s.Cookie(42, time.Hour)
		if c.Secure != secure || s.SecureCookies() != secure {
			t.Errorf("Secure(%v): cookie Secure = %v, SecureCookies() = %v", secure, c.Secure, s.SecureCookies())
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
			t.Errorf("Secure(%v) lost HttpOnly or SameSite: %+v", secure, c)
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(c)
		if id, ok := s.UserID(r); !ok || id != 42 {
			t.Errorf("Secure(%v): cookie reads back as %d, %v", secure, id, ok)
		}
	}
	plain, _ := NewSigner(key)
	if plain.Cookie(1, time.Hour).Secure {
		t.Error("a signer without options makes Secure cookies")
	}
}

// Signing in twice as the same user, even within one second, gives two
// different cookies, both valid: the cookie is renewed at every sign-in.
func TestCookieIsNewEachTime(t *testing.T) {
	s, _ := NewSigner([]byte(strings.Repeat("k", MinKeyLen)))
	a, b := s.Cookie(7, time.Hour), s.Cookie(7, time.Hour)
	if a.Value == b.Value {
		t.Fatal("two sign-ins gave the same session cookie")
	}
	for _, c := range []*http.Cookie{a, b} {
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(c)
		if id, ok := s.UserID(r); !ok || id != 7 {
			t.Errorf("cookie reads back as %d, %v", id, ok)
		}
	}
}

func TestSealOpen(t *testing.T) {
	key := []byte(strings.Repeat("k", MinKeyLen))
	s, _ := NewSigner(key)
	other, _ := NewSigner([]byte(strings.Repeat("x", MinKeyLen)))
	good := s.Seal("state", []byte("hello|world"), time.Minute)
	expired := s.Seal("state", []byte("hello"), -time.Second)
	renamed := *good
	renamed.Name = "other"
	tampered := *good
	tampered.Value = "A" + good.Value[1:]
	session := s.Cookie(1, time.Hour)
	session.Name = "state"
	tests := []struct {
		name   string
		signer *Signer
		cookie *http.Cookie
		open   string
		want   string
		ok     bool
	}{
		{"valid", s, good, "state", "hello|world", true},
		{"expired", s, expired, "state", "", false},
		{"other key", other, good, "state", "", false},
		{"another name", s, &renamed, "other", "", false},
		{"tampered", s, &tampered, "state", "", false},
		{"a session cookie in its place", s, session, "state", "", false},
		{"absent", s, nil, "state", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.cookie != nil {
				r.AddCookie(tt.cookie)
			}
			got, ok := tt.signer.Open(r, tt.open)
			if string(got) != tt.want || ok != tt.ok {
				t.Fatalf("Open = %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
	if c := s.Clear("state"); c.MaxAge >= 0 || c.Value != "" {
		t.Errorf("Clear gives %+v, want a deleting cookie", c)
	}
	if !good.HttpOnly || good.SameSite != http.SameSiteLaxMode {
		t.Errorf("sealed cookie lacks HttpOnly or SameSite: %+v", good)
	}
}
