package tasks

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
)

// Result is what a successful handler reports besides any file it wrote.
type Result struct {
	// Summary is a short line for the task list, e.g. "1,204 activities".
	Summary string
}

// Output is where a handler writes its result file and reports its
// progress.
type Output interface {
	// Create starts the job's result file. A handler creates at most one;
	// it is stored when the handler returns nil and discarded otherwise.
	Create(name, contentType string) (io.Writer, error)
	// Progress reports how far the job has got: percent from 0 to 100
	// and a short line such as "4,000 of 10,000 activities". It never
	// blocks: the worker records the latest report with its next
	// heartbeat (about once a second), so calling it often costs nothing.
	Progress(percent int, message string)
}

// HandlerFunc runs one job. It must stop when ctx ends, and be safe to run
// more than once for the same job: delivery is at least once.
type HandlerFunc func(ctx context.Context, job Job, out Output) (Result, error)

// Registry maps job types to their handlers. Modules register their own
// types; the worker runtime only looks them up.
type Registry struct {
	mu       sync.RWMutex
	handlers map[string]registration
}

type registration struct {
	h HandlerFunc
	p Policy
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{handlers: make(map[string]registration)}
}

// Register adds the handler for jobType and the policy its jobs run
// under (zero fields take the Policy defaults). Registering a type twice
// is an error, so two modules cannot silently claim one type.
func (r *Registry) Register(jobType string, h HandlerFunc, p Policy) error {
	if !validToken(jobType) {
		return fmt.Errorf("register %q: %w: type must be 1-64 characters of a-z, 0-9 and _", jobType, ErrInvalidJob)
	}
	if h == nil {
		return fmt.Errorf("register %s: nil handler", jobType)
	}
	p = p.withDefaults()
	if err := p.validate(); err != nil {
		return fmt.Errorf("register %s: %w", jobType, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.handlers[jobType]; dup {
		return fmt.Errorf("register %s: already registered", jobType)
	}
	r.handlers[jobType] = registration{h, p}
	return nil
}

// Lookup returns the handler for jobType and its policy, defaults filled.
func (r *Registry) Lookup(jobType string) (HandlerFunc, Policy, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	reg, ok := r.handlers[jobType]
	return reg.h, reg.p, ok
}

// Types lists the registered job types, sorted.
func (r *Registry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ts := make([]string, 0, len(r.handlers))
	for t := range r.handlers {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	return ts
}
