package elector

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/k8s-elector/elector/internal/record"
)

// annotationCodec keeps the record in the annotation that client-go's removed
// ConfigMap and Endpoints locks used, in their format, so electors on older
// client-go and this one can share an election.
//
// Unlike those locks it never adopts an existing object that lacks the
// annotation (that is somebody's real ConfigMap or Endpoints), and it never
// overwrites a record it cannot parse: both are reported as errors naming the
// object, and the election retries until someone fixes the object.
type annotationCodec[P metav1.Object] struct{}

// decode returns the record and the annotation's text, which is what older
// client-go compared: it has whole-second times, so a renewal in the same
// second as the previous one does not change it, and neither form sees it.
func (annotationCodec[P]) decode(obj P, desc string) (resourcelock.LeaderElectionRecord, []byte, []byte, error) {
	raw, ok := obj.GetAnnotations()[record.AnnotationKey]
	if !ok {
		return resourcelock.LeaderElectionRecord{}, nil, nil, fmt.Errorf("%s exists but has no %q annotation, so it is not a leader-election lock; "+
			"it is left alone: choose another election name or delete the object", desc, record.AnnotationKey)
	}
	rec, err := record.Decode(raw)
	if err != nil {
		return rec, nil, nil, fmt.Errorf("annotation %q of %s cannot be parsed, and is not overwritten; "+
			"restore a valid record or delete the object: %w", record.AnnotationKey, desc, err)
	}
	return rec, []byte(raw), []byte(raw), nil
}

// encode replaces the annotations map rather than changing it, so that an
// object shared with the watch cache is never modified.
func (annotationCodec[P]) encode(obj P, rec resourcelock.LeaderElectionRecord) {
	editAnnotations(obj, func(ann map[string]string) { ann[record.AnnotationKey] = record.Encode(rec) })
}
