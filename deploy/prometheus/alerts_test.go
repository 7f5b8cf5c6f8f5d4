// Package prometheus_test checks the alert rules of alerts.yml with
// Prometheus's own promtool: the rules parse, and each alert fires, or
// does not, in the cases of alerts_test.yml.
package prometheus_test

import (
	"os"
	"os/exec"
	"testing"
)

// TestAlertRules runs promtool check rules and promtool test rules.
// Without promtool the test is skipped, naming the package to install;
// under CI=true that is a failure.
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found (CI=true): install Debian's prometheus package; scripts/test does this when run as root")
		}
		t.Skip("promtool not found: install Debian's prometheus package (scripts/test does), or the alert rules stay untested")
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		out, err := exec.CommandContext(t.Context(), promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
