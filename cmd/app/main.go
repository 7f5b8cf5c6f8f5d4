// Command app runs OTJ Helper's background-task system: the web UI, the
// workers and the task projection, together (app all) or as separate
// processes (app web, app worker), plus operator commands. The program
// itself is internal/app, its composition root; this is only its door.
package main

import (
	"os"

	"github.com/otjhelper/otj/internal/app"
)

// Version is the release's version, set at build time with
//
//	go build -ldflags "-X main.Version=v1.2.3" ./cmd/app
//
// Unset, app version reports the module version and VCS stamp the Go
// toolchain recorded in the binary.
var Version string

func main() { os.Exit(app.Main(app.Options{Version: Version})) }
