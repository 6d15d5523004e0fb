package elector_test

import "testing"

// TestExampleCrashTakeover runs the unit test that
// Example_unitTestWithSynctest shows.
func TestExampleCrashTakeover(t *testing.T) { crashTakeover(t) }
