package metrics

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestRouteLabels labels each request with the pattern of the route that
// served it, as written: /tasks/ and /tasks are two routes, and a mounted
// router's routes keep their own trailing slash.
func TestRouteLabels(t *testing.T) {
	h, err := NewHTTP(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ok := func(w http.ResponseWriter, _ *http.Request) {}
	r := chi.NewRouter()
	r.Use(h.Middleware)
	r.Get("/", ok)
	r.Get("/tasks/", ok)
	r.Get("/tasks", ok)
	r.Get("/tasks/{id}", ok)
	r.Route("/admin", func(r chi.Router) {
		r.Get("/", ok)
		r.Get("/users/", ok)
		r.Get("/users/{id}", ok)
	})
	count := func(route, code string) float64 {
		var m dto.Metric
		if err := h.requests.WithLabelValues(route, code).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	for _, tc := range []struct{ path, route, code string }{
		{"/", "/", "200"},
		{"/tasks/", "/tasks/", "200"},
		{"/tasks", "/tasks", "200"},
		{"/tasks/abc", "/tasks/{id}", "200"},
		{"/admin/", "/admin/", "200"},
		{"/admin/users/", "/admin/users/", "200"},
		{"/admin/users/7", "/admin/users/{id}", "200"},
		{"/nowhere", unmatched, "404"},
	} {
		before := count(tc.route, tc.code)
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, tc.path, nil))
		if got := count(tc.route, tc.code); got != before+1 {
			t.Errorf("GET %s: otj_http_requests_total{route=%q,code=%q} went from %v to %v, want one more", tc.path, tc.route, tc.code, before, got)
		}
	}
}
