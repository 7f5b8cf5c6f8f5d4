package web

import (
	"context"
	"io"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// IDRoutes lists the method and pattern of every route that takes an
// id (a task's or an activity's), as the router has them, so that the id
// checks are tested on each route there is rather than on a list kept by
// hand.
//
// A kind with a result page stands in for the job modules' own.
func IDRoutes() ([][2]string, error) {
	k, err := newKinds([]TaskKind{{
		Type:  "test_view",
		Start: &StartButton{Path: "start-view", Label: "Start"},
		View: &ResultView{Path: "view", Link: "View", Render: func(context.Context, io.Writer, tasktype.Task, io.Reader) error {
			return nil
		}},
	}})
	if err != nil {
		return nil, err
	}
	var out [][2]string
	err = chi.Walk((&server{kinds: k}).routes(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if strings.Contains(route, "{id}") {
			out = append(out, [2]string{method, route})
		}
		return nil
	})
	return out, err
}
