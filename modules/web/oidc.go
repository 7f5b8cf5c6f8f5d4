package web

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// OIDCConfig is sign-in with an OpenID Connect provider (OIDC_ISSUER,
// OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URL), such as Google
// at https://accounts.google.com.
type OIDCConfig struct {
	Issuer, ClientID, ClientSecret string
	// RedirectURL is where the provider sends the browser back; its path
	// is the callback route (such as /auth/callback).
	RedirectURL string
	// ProviderName is what the sign-in button names ("Sign in with
	// Google"). Default: Google for Google's issuer, else the issuer's host.
	ProviderName string
	// Allowed says who may sign in (ALLOWED_EMAILS). The zero Allowlist
	// admits anyone whose provider has verified their email.
	Allowed Allowlist
	// Timeout bounds each call to the provider: discovery, the code
	// exchange, fetching its keys. Default 10s.
	Timeout time.Duration
}

func (o *OIDCConfig) validate() error {
	if o.Issuer == "" || o.ClientID == "" || o.ClientSecret == "" || o.RedirectURL == "" {
		return errors.New("web config: OIDC needs Issuer, ClientID, ClientSecret and RedirectURL")
	}
	if u, err := url.Parse(o.RedirectURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path == "" || u.Path == "/" {
		return fmt.Errorf("web config: OIDC RedirectURL %q: want http(s)://host/path", o.RedirectURL)
	}
	return nil
}

// callbackPath is the route the provider returns to.
func (o *OIDCConfig) callbackPath() string {
	u, _ := url.Parse(o.RedirectURL) // checked by validate
	return u.Path
}

// providerName is how the sign-in page names the provider.
func (o *OIDCConfig) providerName() string {
	if o.ProviderName != "" {
		return o.ProviderName
	}
	u, err := url.Parse(o.Issuer)
	if err != nil || u.Host == "" {
		return "your account"
	}
	if u.Host == "accounts.google.com" {
		return "Google"
	}
	return u.Host
}

// Allowlist is who may sign in: exact addresses, and whole domains
// written "@example.org". Empty, it admits every verified address.
type Allowlist struct {
	emails  map[string]bool
	domains map[string]bool
}

// ParseAllowlist reads ALLOWED_EMAILS: comma-separated addresses and
// "@domain" entries, case-insensitive. Blank entries are skipped.
func ParseAllowlist(s string) (Allowlist, error) {
	a := Allowlist{emails: map[string]bool{}, domains: map[string]bool{}}
	for _, e := range strings.Split(s, ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		switch {
		case e == "":
		case strings.HasPrefix(e, "@") && len(e) > 1 && !strings.ContainsAny(e[1:], "@ \t<>"):
			a.domains[e[1:]] = true
		case strings.Count(e, "@") == 1 && !strings.HasPrefix(e, "@") && !strings.HasSuffix(e, "@") && !strings.ContainsAny(e, " \t<>"):
			a.emails[e] = true
		default:
			return Allowlist{}, fmt.Errorf("%q is neither an email address nor @domain", e)
		}
	}
	return a, nil
}

// Empty reports whether the list names nobody, and so admits everyone verified.
func (a Allowlist) Empty() bool { return len(a.emails) == 0 && len(a.domains) == 0 }

// Admits reports whether email may sign in.
func (a Allowlist) Admits(email string) bool {
	email = strings.ToLower(strings.TrimSpace(email))
	if a.Empty() {
		return true
	}
	if a.emails[email] {
		return true
	}
	at := strings.LastIndexByte(email, '@')
	return at > 0 && a.domains[email[at+1:]]
}

// oidcCookie holds a sign-in under way between /login and the callback:
// signed, short-lived, and deleted by the callback, so used once.
const (
	oidcCookie    = "otj_signin"
	oidcCookieTTL = 10 * time.Minute
)

// signinState is what the sign-in cookie holds: what the callback must
// find again (state, nonce) and the PKCE verifier the code is exchanged with.
type signinState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
}

// oidcProvider finds the provider's endpoints on first use, and again
// after a failure, so that a provider that is down at start neither stops
// the app nor keeps it from signing people in once it is back.
type oidcProvider struct {
	cfg    OIDCConfig
	client *http.Client

	mu       sync.Mutex
	provider *oidc.Provider
}

func newOIDCProvider(cfg OIDCConfig) *oidcProvider {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	return &oidcProvider{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout}}
}

// ctx carries the provider's bounded HTTP client, for go-oidc and oauth2.
func (p *oidcProvider) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, p.client)
}

// get returns the discovered provider, discovering it now if need be.
func (p *oidcProvider) get(ctx context.Context) (*oidc.Provider, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.provider != nil {
		return p.provider, nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	prov, err := oidc.NewProvider(p.ctx(ctx), p.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discover OIDC issuer %s: %w", p.cfg.Issuer, err)
	}
	p.provider = prov
	return prov, nil
}

func (p *oidcProvider) oauth2(prov *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{
		ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, RedirectURL: p.cfg.RedirectURL,
		Endpoint: prov.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "email"},
	}
}

// login sends the browser to the provider, with a new state, nonce and
// PKCE verifier kept in the sign-in cookie.
func (s *server) login(w http.ResponseWriter, r *http.Request) {
	prov, err := s.oidc.get(r.Context())
	if err != nil {
		s.providerDown(w, r, err)
		return
	}
	st := signinState{State: rand.Text(), Nonce: rand.Text(), Verifier: oauth2.GenerateVerifier()}
	b, _ := json.Marshal(st)
	http.SetCookie(w, s.cookie(r, s.cfg.Sessions.Seal(oidcCookie, b, oidcCookieTTL)))
	to := s.oidc.oauth2(prov).AuthCodeURL(st.State, oidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier))
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// providerDown answers when the provider cannot be reached: a plain page,
// and the next sign-in tries again.
func (s *server) providerDown(w http.ResponseWriter, r *http.Request, err error) {
	s.log.WarnContext(r.Context(), "sign-in provider unreachable", "err", err)
	s.fail(w, r, http.StatusServiceUnavailable, "Sign-in unavailable",
		"The sign-in provider cannot be reached just now. Please try again in a few minutes.")
}

// badSignin answers a callback that does not complete a sign-in started
// here: no cookie, another state, a code the provider refuses.
func (s *server) badSignin(w http.ResponseWriter, r *http.Request, why string, attrs ...any) {
	s.log.InfoContext(r.Context(), "sign-in refused", append([]any{"why", why}, attrs...)...)
	s.fail(w, r, http.StatusBadRequest, "Sign-in not completed",
		"This sign-in could not be checked, perhaps because it took too long or was started elsewhere. Please sign in again.")
}
