package web_test

import (
	"fmt"
	"html"
	"net/http"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/testsupport"
)

// listedTask is a task_result row as the list tests write it: what the
// task list reads.
type listedTask struct {
	bun.BaseModel `bun:"table:task_result"`

	ID        string `bun:"id,pk"`
	UserID    int64
	TaskType  string
	Status    string
	CreatedAt time.Time
	UpdatedAt time.Time
	LastSeq   int64
}

// digestType is a second kind of task for the list's filter.
const digestType = "test_digest"

var twoKinds = append(slices.Clone(reportKinds), web.TaskKind{Type: digestType, Label: "Weekly digest", Noun: "digest"})

// seedTasks writes n tasks of user, one a minute from start (the newest
// last), a digest every third, each completed, failed or cancelled in
// turn, and returns them newest first, as the list shows them.
func seedTasks(t *testing.T, db *bun.DB, user int64, prefix string, n int, start time.Time) []listedTask {
	t.Helper()
	rows := make([]listedTask, n)
	for i := range rows {
		typ := reportType
		if i%3 == 0 {
			typ = digestType
		}
		at := start.Add(time.Duration(i) * time.Minute)
		rows[i] = listedTask{ID: fmt.Sprintf("%s%03d", prefix, i), UserID: user, TaskType: typ,
			Status: string(tasktype.Statuses[3+i%5%3]), CreatedAt: at, UpdatedAt: at, LastSeq: int64(i + 1)}
	}
	if _, err := db.NewInsert().Model(&rows).Exec(testsupport.Context(t)); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(rows)
	return rows
}

var (
	listedRow = regexp.MustCompile(`<tr id="task-([^"]+)">`)
	olderLink = regexp.MustCompile(`<a rel="next" href="([^"]+)">Older`)
	newerLink = regexp.MustCompile(`<a rel="prev" href="([^"]+)">← Newer`)
)

// listPage reads a page of the task list: its tasks' ids and the links
// to the pages beside it ("" if none).
func listPage(t *testing.T, f *fixture, c *http.Client, path string) (ids []string, newer, older string) {
	t.Helper()
	code, page := getBody(t, c, f.srv.URL+path)
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d:\n%s", path, code, page)
	}
	for _, m := range listedRow.FindAllStringSubmatch(page, -1) {
		ids = append(ids, m[1])
	}
	if m := newerLink.FindStringSubmatch(page); m != nil {
		newer = html.UnescapeString(m[1])
	}
	if m := olderLink.FindStringSubmatch(page); m != nil {
		older = html.UnescapeString(m[1])
	}
	return ids, newer, older
}

func idsOfRows(rows []listedTask, keep func(listedTask) bool) []string {
	var ids []string
	for _, r := range rows {
		if keep == nil || keep(r) {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

// The task list walks all of a user's 120 tasks in pages of 50, older
// and back newer, each once and in order, none of another user's; its
// filters narrow it by kind, state and day and keep to it page by page.
func TestTaskListPagesAndFilters(t *testing.T) {
	f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}, Kinds: twoKinds})
	start := time.Date(2026, 3, 5, 23, 0, 0, 0, time.UTC) // 120 minutes: half on 6 March
	all := seedTasks(t, f.db, f.alice.ID, "a", 120, start)
	seedTasks(t, f.db, f.bob.ID, "b", 30, start)
	alice := f.client(t, f.alice)

	var walked [][]string
	path := "/tasks/"
	for path != "" {
		ids, _, older := listPage(t, f, alice, path)
		walked = append(walked, ids)
		path = older
	}
	if len(walked) != 3 || len(walked[0]) != 50 || len(walked[1]) != 50 || len(walked[2]) != 20 {
		t.Fatalf("pages of %v, want 50, 50, 20", walked)
	}
	if got := slices.Concat(walked...); !slices.Equal(got, idsOfRows(all, nil)) {
		t.Fatalf("walked older:\n%v\nwant\n%v", got, idsOfRows(all, nil))
	}
	// Back from the last page: the middle one, then the first.
	_, newer, _ := listPage(t, f, alice, "/tasks/?before="+walked[1][49])
	ids, newer2, older := listPage(t, f, alice, newer)
	if !slices.Equal(ids, walked[1]) || older == "" || newer2 == "" {
		t.Fatalf("newer from the last page: %v (older %q, newer %q), want the middle page", ids, older, newer2)
	}
	if ids, newer3, _ := listPage(t, f, alice, newer2); !slices.Equal(ids, walked[0]) || newer3 != "" {
		t.Fatalf("newer from the middle page: %v (newer %q), want the first page and no newer", ids, newer3)
	}

	for _, tc := range []struct {
		name, query string
		keep        func(listedTask) bool
	}{
		{"digests", "type=" + digestType, func(r listedTask) bool { return r.TaskType == digestType }},
		{"failed", "state=failed", func(r listedTask) bool { return r.Status == "failed" }},
		{"failed reports", "type=" + reportType + "&state=failed", func(r listedTask) bool { return r.Status == "failed" && r.TaskType == reportType }},
		// Days in the user's zone: London is on GMT in March.
		{"6 March", "from=2026-03-06&to=2026-03-06", func(r listedTask) bool { return !r.CreatedAt.Before(time.Date(2026, 3, 6, 0, 0, 0, 0, time.UTC)) }},
		{"5 March", "to=2026-03-05", func(r listedTask) bool { return r.CreatedAt.Before(time.Date(2026, 3, 6, 0, 0, 0, 0, time.UTC)) }},
	} {
		want := idsOfRows(all, tc.keep)
		var got []string
		path := "/tasks/?" + tc.query
		for path != "" {
			ids, _, older := listPage(t, f, alice, path)
			got = append(got, ids...)
			path = older
		}
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", tc.name, got, want)
		}
	}

	for _, tc := range []struct {
		query string
		code  int
	}{
		{"state=sleeping", http.StatusBadRequest},
		{"type=no_such_kind", http.StatusBadRequest},
		{"from=5.3.2026", http.StatusBadRequest},
		{"to=2026-02-30", http.StatusBadRequest},
		{"from=2026-03-06&to=2026-03-05", http.StatusBadRequest},
		{"before=" + "b001", http.StatusNotFound}, // another user's task
		{"after=nosuchtask", http.StatusNotFound},
	} {
		if code, _ := getBody(t, alice, f.srv.URL+"/tasks/?"+tc.query); code != tc.code {
			t.Errorf("/tasks/?%s = %d, want %d", tc.query, code, tc.code)
		}
	}
}
