package tasktype

import (
	"context"
	"io"
)

// Kind is one kind of background work as users see it: how its tasks
// are named, the button that starts one, and how a completed one's
// result is shown or downloaded. Each job module declares its kind with
// the registry (tasks.Registry.Describe) beside its handler; the web
// shows the registry's kinds, and knows no job type of its own. The
// rendering hooks are plain functions over readers and writers, so that
// the web imports no job module and no job module imports the web.
type Kind struct {
	// Type is the job type. Required.
	Type string
	// Label is how each task of the kind is named ("Full report (CSV)");
	// empty: the type, underscores as spaces.
	Label string
	// Noun is what a user calls one in a sentence ("report", "digest");
	// empty: the label, lower-cased.
	Noun string
	// Start, when set, puts a button on the task list that starts one.
	Start *StartButton
	// View, when set, is what a completed task of the kind offers in
	// place of a download: a page showing its result.
	View *ResultView
	// Formats are other files a completed task's result downloads as,
	// beside the stored one, each made from it as it is downloaded.
	Formats []ResultFormat
	// Restate, when set, turns a completed task's summary as the event
	// log holds it into the sentence its owner is shown, reading what
	// it needs (an email address, a name) from the database as the page
	// is read. The log keeps ids, numbers, dates and codes only, never
	// personal text (see Result.Summary), so a sentence that names the
	// user is built here, not stored. It returns summary as it is when
	// it has nothing to add, or cannot read what it needs: summaries
	// recorded before this rule already hold their sentence.
	Restate func(ctx context.Context, userID int64, summary string) string
}

// ResultFormat is another file a completed task's stored result can be
// downloaded as (GET /tasks/{id}/download/{Name}), made from the stored
// file, once its digest is checked, by the kind's own module as the
// response is written: nothing more is stored, and the two files say
// the same.
type ResultFormat struct {
	// Name is the address's last segment ("xlsx"): lower-case letters,
	// digits and '-'.
	Name string
	// Label is the link's text ("Excel (.xlsx)").
	Label string
	// Ext is the file name's extension in place of the stored one's
	// (".xlsx"); ContentType is the file's.
	Ext, ContentType string
	// Convert writes the stored result, read from src, to dst in the
	// format. An error before anything is written is a 500; it should
	// return soon after ctx ends (the client went away).
	Convert func(ctx context.Context, src io.Reader, dst io.Writer) error
}

// StartButton is a task list button that enqueues a job of its kind for
// the signed-in user: POST /tasks/{Path}, with the list's idempotency key.
type StartButton struct {
	// Path is the route under /tasks/ ("generate-report"): lower-case
	// letters, digits and '-'.
	Path string
	// Label is the button's text ("Generate Full Report").
	Label string
	// Hint, if set, says beside the button what it makes.
	Hint string
	// Queued is the notice shown once the job is queued; empty: a
	// sentence built from the kind's label.
	Queued string
}

// ResultView shows a completed task's stored result as a page of the app,
// at /tasks/{id}/{Path}, linked from the task list and the task's page.
type ResultView struct {
	// Path is the page's last path segment ("analytics"): lower-case
	// letters, digits and '-', and none of the task routes' own.
	Path string
	// Link is the text of the links to the page ("Open the charts").
	Link string
	// Render writes the result, read from result, as an HTML fragment
	// the page's layout wraps. It must hold no script and no inline
	// style (the pages' CSP refuses both); classes are styled by the
	// app's stylesheet. An error before anything is written is a 500.
	Render func(ctx context.Context, w io.Writer, t Task, result io.Reader) error
}
