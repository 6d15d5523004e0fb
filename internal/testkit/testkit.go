// Package testkit holds what the tests of several packages of this module
// share: waiting on virtual time (testing/synctest) and a log that records
// its lines. Only tests import it.
package testkit
