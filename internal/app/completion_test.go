package app

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// app with no command is a mistake: the usage on stderr, status 2, as a
// real process exits.
func TestNoCommandIsAUsageError(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), nil, func(string) string { return "" }, &out, &errOut)
	if err == nil || exitStatus(err) != 2 || out.Len() != 0 || !strings.Contains(errOut.String(), "usage: app <command>") {
		t.Fatalf("app: err %v (status %d), stdout %q, stderr:\n%s", err, exitStatus(err), out.String(), errOut.String())
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	stderr, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(stderr), "usage: app <command>") {
		t.Errorf("app as a process: %v, output:\n%s", err, stderr)
	}
	if err := run(context.Background(), []string{"nonsense"}, func(string) string { return "" }, &out, &errOut); exitStatus(err) != 2 {
		t.Errorf("app nonsense: %v, status %d; want 2", err, exitStatus(err))
	}
}

// app tasks list --help (and every other subcommand's) describes each of
// its flags, on stdout, from the flag set the command parses with.
func TestSubcommandHelpDescribesFlags(t *testing.T) {
	for path, fs := range flagSets() {
		args := append(strings.Fields(path), "--help")
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut); err != nil {
			t.Errorf("app %s: %v", strings.Join(args, " "), err)
			continue
		}
		for _, f := range shownFlags(fs) {
			if !strings.Contains(out.String(), "--"+f.Name) || !strings.Contains(out.String(), f.Usage[:min(len(f.Usage), 20)]) {
				t.Errorf("app %s does not describe --%s:\n%s", strings.Join(args, " "), f.Name, out.String())
			}
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"tasks", "list", "--help"}, func(string) string { return "" }, &out, &out); err != nil ||
		!strings.HasPrefix(out.String(), "usage: app tasks list") || !strings.Contains(out.String(), "--state string  only tasks in this state") {
		t.Errorf("app tasks list --help: %v\n%s", err, out.String())
	}
}

// The completion scripts are bash that bash accepts, and complete
// commands, subcommands and flags from the same tables as help.
func TestCompletion(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("bash is needed to check the completion script")
	}
	dir := t.TempDir()
	for _, shell := range completionShells {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"completion", shell}, func(string) string { return "" }, &out, &out); err != nil {
			t.Fatalf("app completion %s: %v", shell, err)
		}
		file := filepath.Join(dir, shell)
		if err := os.WriteFile(file, out.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command("bash", "-n", file).CombinedOutput(); err != nil {
			t.Errorf("bash -n on the %s script: %v\n%s", shell, err, b)
		}
		if shell == "zsh" && !strings.HasPrefix(out.String(), "#compdef app\n") {
			t.Errorf("the zsh script does not start with #compdef app:\n%s", out.String())
		}
	}
	tests := []struct {
		line string // the words typed; the last is being completed
		want string
	}{
		{"app ta", "tasks"},
		{"app c", "completion"},
		{"app tasks ", "cancel list retry show"},
		{"app tasks list --st", "--state"},
		{"app tasks list --state failed --", "--json --limit --state --type --user"},
		{"app tasks show 0123ABC --j", "--json"},
		{"app tasks retry ", ""},
		{"app bench re", "report"},
		{"app bench report --a", "--activities"},
		{"app demo --e", "--email"},
		{"app completion ", "bash zsh"},
		{"app help pro", "projections"},
		{"app all ", ""},
	}
	for _, tt := range tests {
		words := strings.Split(tt.line, " ")
		script := "source " + filepath.Join(dir, "bash") + "\nCOMP_WORDS=(" + quoteWords(words) + ")\nCOMP_CWORD=" +
			strconv.Itoa(len(words)-1) + "\n_otj_app\necho \"${COMPREPLY[*]}\"\n"
		got, err := exec.Command("bash", "-c", script).CombinedOutput()
		if err != nil {
			t.Errorf("%q: %v\n%s", tt.line, err, got)
			continue
		}
		if strings.TrimSpace(string(got)) != tt.want {
			t.Errorf("completing %q = %q, want %q", tt.line, strings.TrimSpace(string(got)), tt.want)
		}
	}
}

// The zsh script is zsh that zsh accepts, and registers the completion
// through bashcompinit, which offers the same words (zsh matches them
// against what is typed itself: its compgen ignores the word).
func TestCompletionZsh(t *testing.T) {
	if _, err := exec.LookPath("zsh"); err != nil {
		t.Fatal("zsh is needed to check the zsh completion script (scripts/test installs it)")
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"completion", "zsh"}, func(string) string { return "" }, &out, &out); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "_app")
	if err := os.WriteFile(file, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("zsh", "-n", file).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, b)
	}
	script := "autoload -U compinit && compinit -u -D\nsource " + file + "\necho ${_comps[app]}\nsetopt ksharrays\n" +
		"COMP_WORDS=(app tasks list --st); COMP_CWORD=3; _otj_app; echo \"${COMPREPLY[*]}\"\n"
	cmd := exec.Command("zsh", "-f", "-c", script)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("zsh: %v\n%s", err, got)
	}
	if want := "_bash_complete -F _otj_app\n--json --limit --state --type --user\n"; string(got) != want {
		t.Errorf("zsh completion gave %q, want %q", got, want)
	}
}

// quoteWords is words as a bash array's elements.
func quoteWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + w + "'"
	}
	return strings.Join(q, " ")
}
