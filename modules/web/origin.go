package web

import (
	"net/http"

	"github.com/go-chi/chi/v5/middleware"
)

// crossOrigin refuses state-changing requests from other sites with 403.
// Browsers mark them (Sec-Fetch-Site, Origin), and http.CrossOriginProtection
// reads the marks. It runs inside securityHeaders, so that the refusal
// carries the same headers as every other response.
func (s *server) crossOrigin(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := cop.Check(r); err != nil {
			s.refuseCrossOrigin(w, r, err.Error())
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refuseCrossOrigin answers a request another site made the browser send.
func (s *server) refuseCrossOrigin(w http.ResponseWriter, r *http.Request, why string) {
	s.log.InfoContext(r.Context(), "cross-origin request refused", "method", r.Method, "path", r.URL.Path,
		"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"), "why", why,
		"request_id", middleware.GetReqID(r.Context()))
	s.fail(w, r, http.StatusForbidden, "Request refused",
		"This request came from another site, so it was not carried out. Open OTJ Helper itself and try again there.")
}
