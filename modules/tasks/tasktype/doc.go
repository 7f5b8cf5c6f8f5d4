// Package tasktype holds the types every part of the task system shares:
// the job and its events, a task's state, the retry policy, what a
// handler sees and returns, and the errors callers check with errors.Is.
// It imports nothing of the task system, so the root package, the
// drivers and the machinery under internal/ can all depend on it.
package tasktype
