// Package taskdriver is what the task system asks of the drivers behind
// it: the Driver that carries jobs (enqueue, a worker's queue and its
// deliveries), the Log that keeps the record (events, their stream,
// result files), and the abilities a driver may add. Its sub-package
// drivertest is the suite every driver passes.
package taskdriver
