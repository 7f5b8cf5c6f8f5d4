package web_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/otjhelper/otj/modules/web"
)

// Every route taking a task id answers anything that is not a job id
// with the plain 404 page, before the id reaches storage or the broker.
func TestEveryIDRouteRefusesMalformedIDs(t *testing.T) {
	routes, err := web.IDRoutes()
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) < 4 {
		t.Fatalf("found only %v: the walk no longer sees the task routes", routes)
	}
	ctl := &fakeControl{}
	hist := &fakeHistory{}
	f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}, Control: ctl, History: hist})
	bad := map[string]string{
		"NUL":          "%00",
		"NUL inside":   "job%001",
		"overlong":     strings.Repeat("a", 65),
		"dotted":       "a.b",
		"dash":         "generate-report",
		"wildcard":     "%2A",
		"subject tail": "%3E",
		"space":        "a%20b",
		"non-ascii":    "%C3%A9",
		"percent":      "%25",
	}
	c := f.client(t, f.alice)
	for _, rt := range routes {
		for name, id := range bad {
			path := strings.Replace(rt[1], "{id}", id, 1)
			t.Run(rt[0]+" "+rt[1]+" "+name, func(t *testing.T) {
				req, err := http.NewRequest(rt[0], f.srv.URL+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				body := string(b)
				if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "not yours to see") {
					t.Fatalf("%s %s = %d:\n%s", rt[0], path, resp.StatusCode, body)
				}
			})
		}
	}
	if calls := ctl.Calls(); len(calls) != 0 {
		t.Errorf("malformed ids reached the broker: %+v", calls)
	}
}
