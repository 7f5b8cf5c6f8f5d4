package apptest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/platform/testsupport"
)

// activityChanges creates, edits and deletes an activity of userID
// through the app's pages at base and returns the subjects their events
// must land on.
func activityChanges(t *testing.T, base string, userID int64) []string {
	t.Helper()
	c := testsupport.Client(t, base, testsupport.Signer(t), userID)
	form := url.Values{"title": {"Events test"}, "activity_date": {"2026-03-05"}, "duration_hours": {"1"},
		"activity_type": {"other"}, "evidence_quality": {"draft"}, "link_url": {"https://example.org/e"},
		"link_stage": {"capture"}, "link_source_type": {"article"}}
	resp, body := testsupport.PostForm(t, c, base+"/activities/new", form)
	var id int64
	if _, err := fmt.Sscanf(resp.Header.Get("Location"), "/activities/%d", &id); resp.StatusCode != http.StatusSeeOther || err != nil {
		t.Fatalf("create = %d %q:\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	form.Set("title", "Events test, edited")
	if resp, body := testsupport.PostForm(t, c, fmt.Sprintf("%s/activities/%d/edit", base, id), form); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("edit = %d:\n%s", resp.StatusCode, body)
	}
	if resp, body := testsupport.PostForm(t, c, fmt.Sprintf("%s/activities/%d/delete", base, id), nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete = %d:\n%s", resp.StatusCode, body)
	}
	var subjects []string
	for _, k := range []activity.EventKind{activity.EventCreated, activity.EventEdited, activity.EventDeleted} {
		subjects = append(subjects, activity.Subject(userID, id, k))
	}
	return subjects
}

// waitActivityEvents waits until the ACTIVITY stream holds one message on
// each subject, asking as nc's user (STREAM.INFO, which the web user has).
func waitActivityEvents(t *testing.T, nc *nats.Conn, subjects []string) {
	t.Helper()
	var last string
	testsupport.Eventually(t, 15*time.Second, "the activity events never reached the stream", func() bool {
		msg, err := nc.Request("$JS.API.STREAM.INFO."+activity.Stream, []byte(`{"subjects_filter":"activity.>"}`), 5*time.Second)
		if err != nil {
			last = err.Error()
			return false
		}
		last = string(msg.Data)
		var info struct {
			State struct {
				Subjects map[string]int `json:"subjects"`
			} `json:"state"`
		}
		if err := json.Unmarshal(msg.Data, &info); err != nil {
			return false
		}
		for _, s := range subjects {
			if info.State.Subjects[s] != 1 {
				return false
			}
		}
		return true
	})
	if strings.Contains(last, `"error"`) {
		t.Fatalf("stream info: %s", last)
	}
}
