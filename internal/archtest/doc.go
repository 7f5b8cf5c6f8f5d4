// Package archtest holds the import check: a test that reads the
// module's import graph (go list) and fails when a package crosses a
// boundary the README's Architecture section draws. It has no code of
// its own; the rules are in its test.
package archtest
