package tasktype

import (
	"os"
	"strconv"
)

// ProcessName is this process as workers name it in events and logs,
// host:pid: unique across the machines of a deployment while it runs.
func ProcessName() string {
	host, _ := os.Hostname()
	return host + ":" + strconv.Itoa(os.Getpid())
}
