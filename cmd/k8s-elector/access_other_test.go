//go:build !linux

package main

import "testing"

// withoutFileAccessOverride runs f as it is: outside Linux the tests do not
// drop root's power to read any file, and a case that needs it skips itself.
func withoutFileAccessOverride(t *testing.T, f func()) { f() }
