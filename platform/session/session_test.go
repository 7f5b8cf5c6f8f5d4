package session

import (
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
