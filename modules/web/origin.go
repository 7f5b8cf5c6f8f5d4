package web

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5/middleware"
)

// crossOrigin refuses state-changing requests that another site made the
// browser send, with 403. It runs inside securityHeaders, so that the
// refusal carries the same headers as every other response.
//
// Browsers since 2023 say where a request comes from in Sec-Fetch-Site,
// scheme included, and http.CrossOriginProtection goes by it. Without it
// (an older browser, or not a browser), CrossOriginProtection compares
// only the Origin's host with the Host header, so a page on https://<the
// app's host> could post to an app on plain HTTP. Here such an Origin
// must be the app's own origin, scheme and host: BaseURL's, or
// http://<Host> without one. A request with neither header is no
// browser's, and passes, as in CrossOriginProtection.
func (s *server) crossOrigin(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := cop.Check(r); err != nil {
			s.refuseCrossOrigin(w, r, err.Error())
			return
		}
		if origin := r.Header.Get("Origin"); !safeMethod(r.Method) && r.Header.Get("Sec-Fetch-Site") == "" &&
			origin != "" && !s.ownOrigin(origin, r) {
			s.refuseCrossOrigin(w, r, "Origin is not the app's own scheme and host")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// safeMethod reports whether m is one of the methods that change nothing,
// which CrossOriginProtection lets through from anywhere.
func safeMethod(m string) bool { return m == "GET" || m == "HEAD" || m == "OPTIONS" }

// ownOrigin reports whether origin, an Origin header, names the app: the
// scheme and host of BaseURL or, without one, plain HTTP on the host the
// request was sent to.
func (s *server) ownOrigin(origin string, r *http.Request) bool {
	o, err := url.Parse(origin)
	if err != nil || o.Host == "" {
		return false // "null" (an opaque origin) or not an origin at all
	}
	scheme, host := "http", r.Host
	if u := s.cfg.BaseURL; u != nil {
		scheme, host = u.Scheme, u.Host
	}
	return o.Scheme == scheme && strings.EqualFold(withoutDefaultPort(o.Scheme, o.Host), withoutDefaultPort(scheme, host))
}

// withoutDefaultPort drops the scheme's own port from host, which
// browsers leave out of Origin but BASE_URL may spell out.
func withoutDefaultPort(scheme, host string) string {
	if scheme == "https" {
		return strings.TrimSuffix(host, ":443")
	}
	return strings.TrimSuffix(host, ":80")
}

// refuseCrossOrigin answers a request another site made the browser send.
func (s *server) refuseCrossOrigin(w http.ResponseWriter, r *http.Request, why string) {
	s.log.InfoContext(r.Context(), "cross-origin request refused", "method", r.Method, "path", r.URL.Path,
		"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"), "why", why,
		"request_id", middleware.GetReqID(r.Context()))
	s.fail(w, r, http.StatusForbidden, "Request refused",
		"This request came from another site, so it was not carried out. Open OTJ Helper itself and try again there.")
}
