package testsupport

import (
	"net"
	"net/http"
	"net/http/cookiejar"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
)

// OIDCProvider is a mock OpenID Connect provider running in the test
// (github.com/oauth2-proxy/mockoidc): discovery, authorization with PKCE,
// a token endpoint that takes each code once, and signed ID tokens.
type OIDCProvider struct {
	// Issuer, ClientID and ClientSecret are what the app is configured with.
	Issuer, ClientID, ClientSecret string
	m                              *mockoidc.MockOIDC
}

// OIDC starts a mock provider on loopback, stopped when the test ends.
// Its authorization endpoint signs in, without asking, the user queued
// with QueueUser (mockoidc's default user, jane.doe@example.com,
// verified, when none is).
func OIDC(t testing.TB) *OIDCProvider {
	t.Helper()
	return OIDCAt(t, "127.0.0.1:0", "", "")
}

// OIDCAt is OIDC listening on addr, with the given client id and secret
// ("" for made-up ones): a provider that comes up where the app was told
// to look for it, for tests of a provider that was down.
func OIDCAt(t testing.TB, addr, clientID, clientSecret string) *OIDCProvider {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if clientID != "" {
		m.ClientID, m.ClientSecret = clientID, clientSecret
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Shutdown(); err != nil {
			t.Errorf("stop mock OIDC provider: %v", err)
		}
	})
	return &OIDCProvider{Issuer: m.Issuer(), ClientID: m.ClientID, ClientSecret: m.ClientSecret, m: m}
}

// QueueUser makes email the next user to sign in, with verified as the
// ID token's email_verified claim.
func (p *OIDCProvider) QueueUser(email string, verified bool) {
	p.m.QueueUser(&mockoidc.MockUser{Subject: "sub-" + email, Email: email, EmailVerified: verified})
}

// BrowserClient returns an HTTP client that keeps cookies and follows
// redirects, as a browser does through a sign-in, and that records every
// URL it was sent to in Visited.
func BrowserClient(t testing.TB) *RecordingClient {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	rc := &RecordingClient{}
	rc.Client = &http.Client{
		Jar:     jar,
		Timeout: 30 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			rc.Visited = append(rc.Visited, req.URL.String())
			if len(via) > 10 {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	return rc
}

// RecordingClient is an http.Client that notes the redirects it follows.
type RecordingClient struct {
	*http.Client
	// Visited are the URLs redirects led to, in order.
	Visited []string
}

// SignIn signs email in to the app at baseURL through p, as a browser
// would: GET baseURL/login, on to the provider and back to the app's
// callback. It returns the client, signed in if the app let email in,
// and the last response, with its body.
func (p *OIDCProvider) SignIn(t testing.TB, baseURL, email string, verified bool) (*RecordingClient, *http.Response, string) {
	t.Helper()
	p.QueueUser(email, verified)
	c := BrowserClient(t)
	resp, err := c.Get(baseURL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	return c, resp, readBody(t, resp)
}
