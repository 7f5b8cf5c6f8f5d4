package tasktype

import "time"

// Pause is a job type paused by an operator: its jobs are accepted and
// wait, on every worker, until it is resumed.
type Pause struct {
	// Type is the job type paused.
	Type string `json:"type"`
	// By names who paused it (an operator's email address).
	By string `json:"by"`
	// At is when.
	At time.Time `json:"at"`
	// Resumed, when set, is when the type was last resumed: it is not
	// paused now. A job of the type due before then was put off by the
	// pause, not lost, if it comes back with nothing on record.
	Resumed time.Time `json:"resumed,omitzero"`
}
