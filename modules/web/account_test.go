package web_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/testsupport"
)

// recordingEraser stands for account.Eraser, whose erasing is tested in
// modules/account and modules/tasks: it records whom the web erased.
type recordingEraser struct {
	mu     sync.Mutex
	erased []int64
}

func (e *recordingEraser) Erase(_ context.Context, userID int64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.erased = append(e.erased, userID)
	return nil
}

func (e *recordingEraser) Erased() []int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]int64(nil), e.erased...)
}

const exportType = "test_export"

// requests are the enqueues the fake took, in order.
func (f *fakeEnqueuer) requests() []tasktype.EnqueueRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]tasktype.EnqueueRequest(nil), f.calls...)
}

func accountFixture(t *testing.T) (*fixture, *recordingEraser, *fakeEnqueuer) {
	t.Helper()
	er, enq := &recordingEraser{}, &fakeEnqueuer{}
	return newFixture(t, web.Config{Enqueuer: enq, Account: er, ExportType: exportType}), er, enq
}

// The account page offers both actions, each saying what it does.
func TestAccountPageOffersExportAndDelete(t *testing.T) {
	f, _, _ := accountFixture(t)
	code, body := getBody(t, f.client(t, f.alice), f.srv.URL+"/account")
	if code != http.StatusOK {
		t.Fatalf("GET /account = %d", code)
	}
	for _, want := range []string{`action="/account/export"`, `action="/account/delete"`, `name="confirm"`, "zip file", "cannot be undone"} {
		if !strings.Contains(body, want) {
			t.Errorf("account page lacks %q", want)
		}
	}
}

// Deleting needs the user's own email typed: missing or wrong is a 400
// with the form and a sentence, and erases nothing; the right one erases
// the signed-in user, clears the session and says goodbye.
func TestAccountDeleteNeedsConfirmation(t *testing.T) {
	f, er, _ := accountFixture(t)
	c := f.client(t, f.alice)
	for _, tc := range []struct{ confirm, says string }{
		{"", "Type your email address to confirm"},
		{"bob@example.org", "Type your email address, alice@example.org, to confirm"},
		{"alice", "Nothing was deleted"},
	} {
		resp, body := testsupport.PostForm(t, c, f.srv.URL+"/account/delete", url.Values{"confirm": {tc.confirm}})
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(html.UnescapeString(body), tc.says) || !strings.Contains(body, `action="/account/delete"`) {
			t.Errorf("confirm %q = %d; want 400 with the form saying %q:\n%s", tc.confirm, resp.StatusCode, tc.says, body)
		}
	}
	if got := er.Erased(); len(got) != 0 {
		t.Fatalf("refused confirmations erased %v", got)
	}
	resp, body := testsupport.PostForm(t, c, f.srv.URL+"/account/delete", url.Values{"confirm": {" Alice@Example.org "}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Your account is deleted") {
		t.Fatalf("confirmed delete = %d:\n%s", resp.StatusCode, body)
	}
	if got := er.Erased(); len(got) != 1 || got[0] != f.alice.ID {
		t.Errorf("erased %v; want only alice (%d)", got, f.alice.ID)
	}
	cleared := false
	for _, ck := range resp.Cookies() {
		cleared = cleared || ck.MaxAge < 0
	}
	if !cleared {
		t.Errorf("the session cookie was not cleared: %v", resp.Cookies())
	}
	if strings.Contains(body, "alice@example.org") {
		t.Error("the goodbye page still shows the user as signed in")
	}
}

// A cross-site POST to either action is refused with a 403 and does
// nothing, as every state-changing route is.
func TestAccountActionsRefuseCrossSite(t *testing.T) {
	f, er, enq := accountFixture(t)
	c := f.client(t, f.alice)
	for _, path := range []string{"/account/delete", "/account/export"} {
		for _, hdr := range [][]string{{"Sec-Fetch-Site", "cross-site"}, {"Origin", "https://evil.example"}} {
			resp, _ := testsupport.PostForm(t, c, f.srv.URL+path,
				url.Values{"confirm": {f.alice.Email}, "key": {"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"}}, hdr...)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s with %v = %d; want 403", path, hdr, resp.StatusCode)
			}
		}
	}
	if got := er.Erased(); len(got) != 0 {
		t.Errorf("cross-site posts erased %v", got)
	}
	if got := enq.requests(); len(got) != 0 {
		t.Errorf("cross-site posts enqueued %v", got)
	}
}

// Export enqueues the configured export job for the signed-in user.
func TestAccountExportEnqueues(t *testing.T) {
	f, _, enq := accountFixture(t)
	c := f.client(t, f.bob)
	_, page := testsupport.Get(t, c, f.srv.URL+"/account")
	m := keyRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no form key on the account page:\n%s", page)
	}
	resp, _ := testsupport.PostForm(t, c, f.srv.URL+"/account/export", url.Values{"key": {m[1]}})
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /account/export = %d", resp.StatusCode)
	}
	got := enq.requests()
	if len(got) != 1 || got[0].Type != exportType || got[0].UserID != f.bob.ID || got[0].Key != m[1] {
		t.Errorf("enqueued %+v; want one %s for bob", got, exportType)
	}
}
