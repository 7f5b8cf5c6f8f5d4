// Package service runs a process's long-lived services (a web server, a
// worker, a projection) side by side and reports the first one that
// fails, so that the process can stop the others and exit with its error.
package service

import (
	"fmt"
	"sync"
)

// Group runs services and collects the first error. The zero value is
// ready to use.
type Group struct {
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
	failed chan struct{}
	once   sync.Once
}

// Go runs fn in a goroutine of its own; an error it returns, prefixed
// with name, is reported through Failed and Wait.
func (g *Group) Go(name string, fn func() error) {
	g.once.Do(func() { g.failed = make(chan struct{}) })
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := fn(); err != nil {
			g.mu.Lock()
			if g.err == nil {
				g.err = fmt.Errorf("%s: %w", name, err)
				close(g.failed)
			}
			g.mu.Unlock()
		}
	}()
}

// Failed is closed when a service has returned an error.
func (g *Group) Failed() <-chan struct{} {
	g.once.Do(func() { g.failed = make(chan struct{}) })
	return g.failed
}

// Wait waits for every service and returns the first error.
func (g *Group) Wait() error {
	g.wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}
