package apptest

import (
	"net/http"
	"testing"

	"github.com/otjhelper/otj/platform/testsupport"
)

// With BASE_URL on https the app counts as served over HTTPS: it starts
// (its session cookies are Secure, which the web module insists on) and
// every response carries Strict-Transport-Security. Without, none does.
func TestBaseURLTurnsOnHTTPS(t *testing.T) {
	for _, base := range []string{"", "https://otj.example.org"} {
		t.Run("BASE_URL="+base, func(t *testing.T) {
			env := baseEnv(t)
			env["BASE_URL"] = base
			app := startApp(t, env, "all")
			url := app.waitOutput(t, runningRE)
			for _, path := range []string{"/healthz", "/tasks/", "/nope"} {
				resp, _ := testsupport.Get(t, http.DefaultClient, url+path)
				got := resp.Header.Get("Strict-Transport-Security")
				if (base != "") != (got != "") {
					t.Errorf("GET %s: Strict-Transport-Security %q with BASE_URL %q", path, got, base)
				}
			}
			app.shutdown(t)
		})
	}
}
