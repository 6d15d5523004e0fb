package elector

import "k8s.io/client-go/tools/leaderelection/resourcelock"

// recordCodec keeps the leader record in one kind of object.
type recordCodec[P any] interface {
	// decode returns the record in obj and its visible and precise forms
	// (see lockRead); desc names the object for errors.
	decode(obj P, desc string) (rec resourcelock.LeaderElectionRecord, visible, precise []byte, err error)
	// encode stores rec in obj, replacing rather than changing any map or
	// pointer that obj shares with a cached copy.
	encode(obj P, rec resourcelock.LeaderElectionRecord)
}
