package web

import (
	"strconv"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// heardView is what the task page and list show of a running task's
// worker: when it was last heard from, and, once that is longer ago than
// its lease, that it stopped. The page carries the times (the server's
// clock at rendering, to correct the browser's by) so that live.js keeps
// the relative time and the sentence true between updates, which come
// only when the task's events do: a dead worker writes none.
type heardView struct {
	At    time.Time // zero: nothing to show
	Now   time.Time
	Ago   string
	Lease time.Duration // zero: the worker made no promise (tasktype.Event.Lease)
	Lost  bool
}

// heard is t's heardView at now.
func heard(now time.Time, t *tasktype.Task) heardView {
	at := t.LastHeard()
	if at.IsZero() {
		return heardView{}
	}
	return heardView{At: at, Now: now, Ago: ago(now.Sub(at)), Lease: t.Lease, Lost: t.WorkerLost(now)}
}

// LeaseMS is the lease in milliseconds, for the page's script.
func (h heardView) LeaseMS() int64 { return h.Lease.Milliseconds() }

// LostMessage is the sentence a lost worker's task shows.
func (h heardView) LostMessage() string { return tasktype.WorkerLostMessage }

// ago says how long ago d was, to the second under an hour ("3 s ago",
// "4 min 12 s ago"), to the minute above ("2 h 3 min ago"). live.js says
// it the same way.
func ago(d time.Duration) string {
	s := int64(max(d, 0) / time.Second)
	switch {
	case s < 60:
		return strconv.FormatInt(s, 10) + " s ago"
	case s < 3600:
		return strconv.FormatInt(s/60, 10) + " min " + strconv.FormatInt(s%60, 10) + " s ago"
	}
	return strconv.FormatInt(s/3600, 10) + " h " + strconv.FormatInt(s%3600/60, 10) + " min ago"
}

// jsTime is t as the page's script reads it: UTC, to the millisecond.
func jsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
