package web_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/modules/web"
)

// A running task says, on its page and in the list, when its worker was
// last heard from, with the times a script needs to keep that true
// (live.js). Once that is longer ago than the lease the worker recorded,
// both say in a plain sentence that the worker stopped and that the task
// will resume when a worker is free; a worker that recorded no lease is
// never said to have stopped.
func TestRunningTaskSaysWhenItsWorkerWasLastHeardFrom(t *testing.T) {
	tests := []struct {
		name  string
		age   time.Duration
		lease time.Duration
		ago   string
		lost  bool
	}{
		{"just heard", 300 * time.Millisecond, 5 * time.Second, "0 s ago", false},
		{"within the lease", 3 * time.Second, 5 * time.Second, "3 s ago", false},
		{"at the lease", 5 * time.Second, 5 * time.Second, "5 s ago", false},
		{"past the lease", 5*time.Second + 200*time.Millisecond, 5 * time.Second, "5 s ago", true},
		{"long gone", 4*time.Minute + 12*time.Second, 5 * time.Second, "4 min 12 s ago", true},
		{"hours", 2*time.Hour + 3*time.Minute + 9*time.Second, 5 * time.Second, "2 h 3 min ago", true},
		{"no lease recorded", time.Hour, 0, "1 h 0 min ago", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			heard := t0.Add(10 * time.Second)
			now := heard.Add(tt.age)
			rows := &fakeTasks{}
			f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}, Tasks: rows, Now: func() time.Time { return now }})
			r := row("job1", f.alice.ID, tasktype.StatusRunning)
			r.UpdatedAt, r.Lease = heard, tt.lease
			rows.rows = []tasktype.Task{r}
			c := f.client(t, f.alice)
			code, page := getBody(t, c, f.srv.URL+"/tasks/job1")
			if code != http.StatusOK {
				t.Fatalf("GET = %d:\n%s", code, page)
			}
			_, list := getBody(t, c, f.srv.URL+"/tasks/")
			for name, html := range map[string]string{"page": page, "list": rowHTML(t, list, "job1")} {
				want := `<span class="heard" data-heard="2026-03-05T14:00:10.000Z" data-now="` + now.UTC().Format("2006-01-02T15:04:05.000Z") + `"`
				if !strings.Contains(html, want) {
					t.Errorf("%s: no %s in\n%s", name, want, html)
				}
				if !strings.Contains(html, `last heard from <time class="ago" datetime="2026-03-05T14:00:10Z">`+tt.ago+`</time>`) {
					t.Errorf("%s: does not say last heard from %s:\n%s", name, tt.ago, html)
				}
				lostShown := strings.Contains(html, `<p class="worker-lost">`+tasktype.WorkerLostMessage)
				lostHidden := strings.Contains(html, `<p class="worker-lost" hidden>`+tasktype.WorkerLostMessage)
				if tt.lease == 0 {
					if lostShown || lostHidden || strings.Contains(html, "data-lease-ms") {
						t.Errorf("%s: a worker that recorded no lease may be said to have stopped:\n%s", name, html)
					}
					continue
				}
				if lostShown != tt.lost || lostHidden == tt.lost {
					t.Errorf("%s: worker-lost sentence shown %v, hidden %v; want shown %v:\n%s", name, lostShown, lostHidden, tt.lost, html)
				}
				if !strings.Contains(html, `data-lease-ms="5000"`) {
					t.Errorf("%s: no lease for the script to judge by:\n%s", name, html)
				}
			}
		})
	}
}

// Only a running task has a worker to be heard from.
func TestOnlyARunningTaskIsHeardFrom(t *testing.T) {
	for _, s := range tasktype.Statuses {
		if s == tasktype.StatusRunning {
			continue
		}
		t.Run(string(s), func(t *testing.T) {
			rows := &fakeTasks{}
			f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}, Tasks: rows, Now: func() time.Time { return t0.Add(time.Hour) }})
			r := row("job1", f.alice.ID, s)
			r.Lease = 5 * time.Second
			rows.rows = []tasktype.Task{r}
			c := f.client(t, f.alice)
			_, page := getBody(t, c, f.srv.URL+"/tasks/job1")
			_, list := getBody(t, c, f.srv.URL+"/tasks/")
			if strings.Contains(page+list, "last heard") || strings.Contains(page+list, "worker-lost") {
				t.Errorf("a %s task says when its worker was last heard from", s)
			}
		})
	}
}
