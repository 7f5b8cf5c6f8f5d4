package web

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
)

// IDRoutes lists the method and pattern of every route that takes an
// id (a task's or an activity's), as the router has them, so that the id
// checks are tested on each route there is rather than on a list kept by
// hand.
func IDRoutes() ([][2]string, error) {
	var out [][2]string
	err := chi.Walk((&server{}).routes(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if strings.Contains(route, "{id}") {
			out = append(out, [2]string{method, route})
		}
		return nil
	})
	return out, err
}
