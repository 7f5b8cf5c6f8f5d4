package tasks

import (
	"fmt"
	"sort"
	"sync"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// types; the worker runtime only looks them up.
type Registry struct {
	mu       sync.RWMutex
	handlers map[string]registration
}

type registration struct {
	h tasktype.HandlerFunc
	p tasktype.Policy
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{handlers: make(map[string]registration)}
}

// Register adds the handler for jobType and the policy its jobs run
// under (zero fields take the Policy defaults). Registering a type twice
// is an error, so two modules cannot silently claim one type.
func (r *Registry) Register(jobType string, h tasktype.HandlerFunc, p tasktype.Policy) error {
	if !tasktype.ValidType(jobType) {
		return fmt.Errorf("register %q: %w: type must be 1-64 characters of a-z, 0-9 and _", jobType, tasktype.ErrInvalidJob)
	}
	if h == nil {
		return fmt.Errorf("register %s: nil handler", jobType)
	}
	p = p.WithDefaults()
	if err := p.Validate(); err != nil {
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
func (r *Registry) Lookup(jobType string) (tasktype.HandlerFunc, tasktype.Policy, bool) {
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
