package web_test

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/testsupport"
)

func settingsFixture(t *testing.T) *fixture {
	t.Helper()
	db, _ := testsupport.DB(t)
	return newFixtureOn(t, db, web.Config{Enqueuer: &fakeEnqueuer{}, Settings: activity.NewStore(db)})
}

// goodSettings is a form the page accepts.
func goodSettings() url.Values {
	return url.Values{
		"selected_spec": {"ST0787"}, "otj_target_hours": {"400"}, "seminar_target_hours": {"20"},
		"weekly_target_hours": {"6.5"}, "timezone": {"Europe/Paris"},
	}
}

// Every field refuses what it must, with a 400, the form as typed, a
// sentence beside the field, and nothing saved.
func TestSettingsValidation(t *testing.T) {
	f := settingsFixture(t)
	c := f.client(t, f.alice)
	tests := []struct {
		field, value, says string
	}{
		{"selected_spec", "", "Choose your apprenticeship standard"},
		{"selected_spec", "ST9999", "Choose one of the standards listed"},
		{"otj_target_hours", "", "Enter a number of hours."},
		{"otj_target_hours", "lots", "such as 400 or 6.5"},
		{"otj_target_hours", "0", "above 0"},
		{"otj_target_hours", "-5", "above 0"},
		{"otj_target_hours", "NaN", "such as 400 or 6.5"},
		{"otj_target_hours", "Inf", "such as 400 or 6.5"},
		{"otj_target_hours", "10001", "at most 10000"},
		{"seminar_target_hours", "x", "such as 400 or 6.5"},
		{"seminar_target_hours", "-1", "or leave it blank"},
		{"seminar_target_hours", "1e9", "at most 10000"},
		{"weekly_target_hours", "ten", "such as 400 or 6.5"},
		{"weekly_target_hours", "0", "or leave it blank"},
		{"weekly_target_hours", "169", "at most 168"},
		{"timezone", "", "Enter your time zone"},
		{"timezone", "Mars/Olympus", "is not one"},
		{"timezone", "Local", "is not one"},
		{"timezone", "../../etc/passwd", "is not one"},
	}
	for _, tt := range tests {
		t.Run(tt.field+"="+tt.value, func(t *testing.T) {
			form := goodSettings()
			form.Set(tt.field, tt.value)
			resp, body := testsupport.PostForm(t, c, f.srv.URL+"/settings", form)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("POST /settings %s=%q = %d, want 400", tt.field, tt.value, resp.StatusCode)
			}
			if page := html.UnescapeString(body); !strings.Contains(page, tt.says) {
				t.Errorf("page does not say %q:\n%s", tt.says, body)
			}
			// The other fields are kept as typed.
			if !strings.Contains(body, `value="Europe/Paris"`) && tt.field != "timezone" || !strings.Contains(body, `value="6.5"`) && tt.field != "weekly_target_hours" {
				t.Errorf("form not kept:\n%s", body)
			}
			u, err := f.users.UserByID(testsupport.Context(t), f.alice.ID)
			if err != nil || u.SelectedSpec != f.alice.SelectedSpec || u.OTJTargetHours != f.alice.OTJTargetHours || u.Timezone != f.alice.Timezone {
				t.Errorf("a refused form changed the user: %+v (%v)", u, err)
			}
		})
	}
}

// A good form is saved and the browser goes back to the page, which
// confirms it and shows what was saved; a blank weekly target is none.
func TestSettingsSave(t *testing.T) {
	f := settingsFixture(t)
	c := f.client(t, f.alice)
	code, body := getBody(t, c, f.srv.URL+"/settings")
	if code != http.StatusOK || !strings.Contains(body, `name="selected_spec"`) || !strings.Contains(body, "ST0763") {
		t.Fatalf("GET /settings = %d:\n%s", code, body)
	}
	form := goodSettings()
	form.Set("weekly_target_hours", " ")
	resp, _ := testsupport.PostForm(t, c, f.srv.URL+"/settings", form)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/settings?saved=1" {
		t.Fatalf("POST /settings = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	u, err := f.users.UserByID(testsupport.Context(t), f.alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	if u.SelectedSpec != "ST0787" || u.OTJTargetHours != 400 || u.SeminarTargetHours != 20 || u.WeeklyTargetHours != 0 || u.Timezone != "Europe/Paris" {
		t.Errorf("saved %+v", u)
	}
	code, body = getBody(t, c, f.srv.URL+"/settings?saved=1")
	if code != http.StatusOK || !strings.Contains(body, "Your settings are saved.") || !strings.Contains(body, `value="400"`) ||
		!strings.Contains(body, `name="weekly_target_hours" inputmode="decimal" value=""`) {
		t.Errorf("page after saving = %d:\n%s", code, body)
	}
	// Bob's settings are his own.
	if b, _ := f.users.UserByID(testsupport.Context(t), f.bob.ID); b.SelectedSpec == "ST0787" {
		t.Error("alice's save changed bob")
	}
	// From another site, nothing is saved.
	form.Set("timezone", "Asia/Tokyo")
	resp, _ = testsupport.PostForm(t, c, f.srv.URL+"/settings", form, "Sec-Fetch-Site", "cross-site")
	if u, _ := f.users.UserByID(testsupport.Context(t), f.alice.ID); resp.StatusCode != http.StatusForbidden || u.Timezone != "Europe/Paris" {
		t.Errorf("cross-site POST /settings = %d, timezone now %s", resp.StatusCode, u.Timezone)
	}
	if code, _ := getBody(t, http.DefaultClient, f.srv.URL+"/settings"); code != http.StatusUnauthorized {
		t.Errorf("GET /settings signed out = %d", code)
	}
}
