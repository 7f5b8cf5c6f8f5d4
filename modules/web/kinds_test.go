package web_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/modules/web"
)

// chartsType is a kind of the tests' own whose results show as a page.
const chartsType = "test_charts"

var chartsKind = web.TaskKind{
	Type: chartsType, Label: "Charts", Noun: "charts",
	Start: &web.StartButton{Path: "run-charts", Label: "Run charts"},
	View: &web.ResultView{Path: "charts", Link: "Open the charts", Render: func(_ context.Context, w io.Writer, t tasktype.Task, r io.Reader) error {
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, `<p class="charts-result">%s for task %s</p>`, html.EscapeString(string(b)), t.ID)
		return err
	}},
}

// A kind's result page renders its result for the owner; another user,
// and a task of another kind, get the 404 an unknown task gets.
func TestResultViewShowsOnlyTheOwnersTaskOfItsKind(t *testing.T) {
	t.Parallel()
	f := liveFixtureWith(t, liveOptions{
		concurrency: 2,
		register: func(r *tasks.Registry) error {
			if err := r.Register(reportType, reportFor(), tasktype.Policy{}); err != nil {
				return err
			}
			return r.Register(chartsType, func(_ context.Context, job tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
				w, err := out.Create("charts.json", "application/json")
				if err != nil {
					return tasktype.Result{}, err
				}
				fmt.Fprintf(w, "charts of user %d", job.UserID)
				return tasktype.Result{Summary: "3 charts"}, nil
			}, tasktype.Policy{})
		},
		web: func(c *web.Config) { c.Kinds = append(append([]web.TaskKind(nil), reportKinds...), chartsKind) },
	})
	alice, bob := f.client(t, f.alice), f.client(t, f.bob)
	resp := post(t, alice, f.srv.URL+"/tasks/run-charts", url.Values{"key": {rand.Text()}}, nil)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	id := loc.Query().Get("queued")
	if resp.StatusCode != http.StatusSeeOther || id == "" {
		t.Fatalf("run charts = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	waitForStatus(t, f, alice, "/tasks/"+id, tasktype.StatusCompleted)
	report := startReport(t, f, alice)
	waitForStatus(t, f, alice, "/tasks/"+report, tasktype.StatusCompleted)

	_, list := getBody(t, alice, f.srv.URL+"/tasks/")
	if tr := rowHTML(t, list, id); !strings.Contains(tr, `href="/tasks/`+id+`/charts">Open the charts</a>`) || !strings.Contains(tr, ">Charts</a>") {
		t.Errorf("charts row offers no link to its page, or no type label:\n%s", tr)
	}
	want := fmt.Sprintf(`<p class="charts-result">charts of user %d for task %s</p>`, f.alice.ID, id)
	cases := []struct {
		name string
		c    *http.Client
		path string
		code int
	}{
		{"owner", alice, "/tasks/" + id + "/charts", http.StatusOK},
		{"another user", bob, "/tasks/" + id + "/charts", http.StatusNotFound},
		{"a task of another kind", alice, "/tasks/" + report + "/charts", http.StatusNotFound},
		{"an unknown task", alice, "/tasks/0000000000000000000000/charts", http.StatusNotFound},
	}
	for _, tc := range cases {
		code, body := getBody(t, tc.c, f.srv.URL+tc.path)
		if code != tc.code {
			t.Errorf("%s: GET %s = %d, want %d", tc.name, tc.path, code, tc.code)
		}
		if got := strings.Contains(body, want); got != (tc.code == http.StatusOK) {
			t.Errorf("%s: page shows the result: %v\n%s", tc.name, got, body)
		}
	}
}
