package app

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/otjhelper/otj/internal/app/bench"
	"github.com/otjhelper/otj/internal/app/operator"
)

// flagSets are the flag sets of every command that takes flags, by the
// command's words after "app " ("tasks list", "demo"): made by the same
// functions the commands parse their arguments with, so that help and
// shell completion cannot drift from what the commands accept.
func flagSets() map[string]*flag.FlagSet {
	m := operator.FlagSets()
	maps.Copy(m, bench.FlagSets())
	var d demoOptions
	m["demo"] = demoFlags(&d, func(string) string { return "" }, io.Discard)
	return m
}

// shownFlags are a flag set's flags that help and completion offer: a
// flag without a description is internal (a child process's).
func shownFlags(fs *flag.FlagSet) []*flag.Flag {
	var out []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if f.Usage != "" {
			out = append(out, f)
		}
	})
	return out
}

// completionWords maps each command path the shell may have typed ("",
// "tasks", "tasks list") to the words that may follow it: subcommands,
// then flags. It is built from the commands table and flagSets.
func completionWords() map[string][]string {
	words := map[string][]string{}
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
		words[c.name] = nil // known, so that what follows it is not a command
	}
	words[""] = names
	words["help"] = slices.Clone(names)
	words["completion"] = slices.Clone(completionShells)
	for path, fs := range flagSets() {
		if cmd, sub, ok := strings.Cut(path, " "); ok && !slices.Contains(words[cmd], sub) {
			words[cmd] = append(words[cmd], sub)
		}
		if _, ok := words[path]; !ok {
			words[path] = []string{} // known, even without flags
		}
		for _, f := range shownFlags(fs) {
			words[path] = append(words[path], "--"+f.Name)
		}
	}
	for p, ws := range words {
		if p != "" && p != "help" {
			slices.Sort(ws) // the map's order is random; the script's is not
		}
		if ws == nil {
			words[p] = []string{}
		}
	}
	return words
}

// completionShells are the shells app completion writes a script for.
var completionShells = []string{"bash", "zsh"}

// runCompletion is app completion bash|zsh: it prints the shell's
// completion script for app.
func runCompletion(args []string, stdout io.Writer) error {
	if len(args) != 1 || !slices.Contains(completionShells, args[0]) {
		return usageError{"completion: want app completion bash or app completion zsh"}
	}
	if args[0] == "zsh" {
		// zsh runs bash completion functions through bashcompinit.
		fmt.Fprint(stdout, "#compdef app\nautoload -U +X bashcompinit && bashcompinit\n")
	}
	writeBashCompletion(stdout)
	return nil
}

// writeBashCompletion writes the bash completion function: the command
// path typed so far is the words that extend a known path (flags and
// their values, task ids, are passed over), and what may follow that
// path is offered.
func writeBashCompletion(w io.Writer) {
	words := completionWords()
	paths := slices.Sorted(maps.Keys(words))
	fmt.Fprint(w, `# Completion for app (OTJ Helper), written by: app completion bash
# Load it with: source <(app completion bash)
_otj_app_words() {
  case "$1" in
`)
	for _, p := range paths {
		fmt.Fprintf(w, "    %q) echo %q ;;\n", p, strings.Join(words[p], " "))
	}
	fmt.Fprint(w, `    *) return 1 ;;
  esac
}
_otj_app() {
  local cur="${COMP_WORDS[COMP_CWORD]}" path="" next i w
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${COMP_WORDS[i]}"
    [[ $w == -* ]] && continue
    next="${path:+$path }$w"
    if _otj_app_words "$next" >/dev/null; then path="$next"; fi
  done
  COMPREPLY=($(compgen -W "$(_otj_app_words "$path")" -- "$cur"))
}
complete -F _otj_app app
`)
}
