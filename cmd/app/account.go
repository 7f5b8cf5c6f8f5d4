package main

import (
	"sync/atomic"

	"github.com/otjhelper/otj/modules/account"
	"github.com/otjhelper/otj/modules/tasks"
)

// lateClient hands the account export the process's task client, which
// is made with the registry the export is registered in: it is set once
// the client exists, before any worker runs a job.
type lateClient struct{ c atomic.Pointer[tasks.Client] }

func (l *lateClient) set(c *tasks.Client) { l.c.Store(c) }

func (l *lateClient) get() account.TaskSource { return l.c.Load() }
