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
	kinds    []tasktype.Kind // in the order they were described
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

// Describe declares how users see and start jobType's tasks, beside its
// handler: the module that registers a job type describes it too, so
// that the web learns every kind from the registry (Kinds). The type
// must be registered first, and described once.
func (r *Registry) Describe(k tasktype.Kind) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.handlers[k.Type]; !ok {
		return fmt.Errorf("describe %q: not registered", k.Type)
	}
	for _, d := range r.kinds {
		if d.Type == k.Type {
			return fmt.Errorf("describe %s: already described", k.Type)
		}
	}
	r.kinds = append(r.kinds, k)
	return nil
}

// Kinds lists the described kinds, in the order they were described.
func (r *Registry) Kinds() []tasktype.Kind {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]tasktype.Kind(nil), r.kinds...)
}
