// Package apptest holds the whole-system scenarios of the app: its test
// binary runs the program itself (app.Main, with the tests' own job
// types) in real OS processes and in-process, against real NATS, Redis,
// SQLite or PostgreSQL and a browser, and checks what users and
// operators see. It has no code of its own beyond its tests.
package apptest
