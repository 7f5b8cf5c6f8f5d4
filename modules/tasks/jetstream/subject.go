package jetstream

import (
	"strconv"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// The subject scheme of job events is the JetStream driver's own: the
// rest of the task system addresses jobs by type, user and id.

// SubjectPrefix starts every job event subject.
const SubjectPrefix = "tasks"

// Subject is where an event is published:
//
//	tasks.<type>.<user>.<job>.<kind>
//
// so that a filter selects one job type (tasks.full_report.>), one user
// (tasks.*.42.>), one job (tasks.*.*.<id>.*) or one kind of event
// (tasks.*.*.*.enqueued, part of the work queue).
func Subject(jobType string, userID int64, jobID string, kind tasktype.EventKind) string {
	return SubjectPrefix + "." + jobType + "." + strconv.FormatInt(userID, 10) + "." + jobID + "." + string(kind)
}

// JobFilter selects every event of one job. A userID of 0 matches any
// user: operators address jobs by id alone.
func JobFilter(userID int64, jobID string) string {
	user := "*"
	if userID > 0 {
		user = strconv.FormatInt(userID, 10)
	}
	return SubjectPrefix + ".*." + user + "." + jobID + ".*"
}

// UserFilter selects every event of one user's jobs, of every type
// (tasks.*.<user>.>): what a live page follows and an erasure purges.
func UserFilter(userID int64) string {
	return SubjectPrefix + ".*." + strconv.FormatInt(userID, 10) + ".>"
}

// EventSubject returns the event's own subject.
func EventSubject(e *tasktype.Event) string { return Subject(e.JobType, e.UserID, e.JobID, e.Kind) }
