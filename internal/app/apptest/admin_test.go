package apptest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// Issue 27 §1 and §8, through app all as deployed: ADMIN_EMAILS opens
// the operator console to the operator it names and to nobody else (a
// 404, as for a path that does not exist); the operator's API lists
// another user's task, and its download of that task's result goes through the
// web role's NATS rights (deploy/nats/roles.conf) into the task's
// history naming the operator.
func TestAdminConsoleThroughTheApp(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	env["ADMIN_EMAILS"] = "ops@example.org"
	p := startApp(t, env, "all")
	base := p.waitOutput(t, runningRE)
	dir := env["OTJ_DATA_DIR"]
	alice := ensureUser(t, dir, "alice@example.org")
	ops := ensureUser(t, dir, "ops@example.org")
	user := testsupport.Client(t, base, testsupport.Signer(t), alice.ID)
	operator := testsupport.Client(t, base, testsupport.Signer(t), ops.ID)

	_, page := testsupport.Get(t, user, base+"/tasks/")
	resp, _ := testsupport.PostForm(t, user, base+"/tasks/generate-report", url.Values{"key": {keyRE.FindStringSubmatch(page)[1]}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST generate-report = %d", resp.StatusCode)
	}
	for _, path := range []string{"/admin/", "/admin/jobs", "/admin/api/jobs"} {
		if resp, _ := testsupport.Get(t, user, base+path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s as a user who is not an operator: %d, want 404", path, resp.StatusCode)
		}
	}

	type list struct {
		Jobs []struct {
			ID     string          `json:"id"`
			UserID int64           `json:"user_id"`
			Status tasktype.Status `json:"status"`
		} `json:"jobs"`
		Next string `json:"next"`
	}
	var l list
	testsupport.Eventually(t, 30*time.Second, "the operator's API never listed alice's completed report", func() bool {
		resp, body := testsupport.Get(t, operator, base+"/admin/api/jobs?user=alice%40example.org&state=completed")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /admin/api/jobs as the operator: %d %s", resp.StatusCode, body)
		}
		l = list{}
		return json.Unmarshal([]byte(body), &l) == nil && len(l.Jobs) == 1 && l.Jobs[0].UserID == alice.ID
	})
	id := l.Jobs[0].ID
	resp, body := testsupport.Get(t, operator, base+"/admin/jobs/"+id+"/download")
	if resp.StatusCode != http.StatusOK || len(body) == 0 {
		t.Fatalf("operator's download of alice's report: %d", resp.StatusCode)
	}
	resp, body = testsupport.Get(t, operator, base+"/admin/api/jobs/"+id)
	var detail struct {
		Events []struct {
			Kind     tasktype.EventKind `json:"kind"`
			By       string             `json:"by"`
			Operator string             `json:"operator"`
		} `json:"events"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &detail) != nil || len(detail.Events) == 0 {
		t.Fatalf("GET /admin/api/jobs/%s: %d %s", id, resp.StatusCode, body)
	}
	last := detail.Events[len(detail.Events)-1]
	if last.Kind != tasktype.EventResultRead || last.By != tasktype.ByOperator || last.Operator != "ops@example.org" {
		t.Errorf("the history does not end with the operator's read of the result: %s", body)
	}
}
