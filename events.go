package elector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	recordutil "k8s.io/client-go/tools/record/util"

	"github.com/k8s-elector/elector/internal/backoff"
)

// The reasons of the Events that WithEvents records.
const (
	// eventReasonLeaderElected: a term started; the message is
	// "<id> became leader".
	eventReasonLeaderElected = "LeaderElected"
	// eventReasonStoppedLeading: a term ended, whether leadership was lost,
	// resigned or released on shutdown; the message is "<id> stopped leading".
	eventReasonStoppedLeading = "StoppedLeading"
)

// eventComponent is the reporting component (source) of the Events.
const eventComponent = "k8s-elector"

const (
	eventQueueLength = 64 // Events waiting to be sent; more are dropped
	eventMaxTries    = 5  // attempts to send one Event
)

// eventRecorder sends core/v1 Events about the Elector's terms. It does what
// client-go's record.EventBroadcaster does with its sink, through the same
// EventCorrelator (per-object spam filter, aggregation, de-duplication into
// a count), but on one goroutine that Run owns and waits for: the
// broadcaster's own goroutines cannot be waited for.
type eventRecorder struct {
	events     corev1client.EventsGetter
	pods       corev1client.PodInterface // nil without a pod name
	podName    string
	namespace  string
	id         string
	timeout    time.Duration
	limit      time.Duration
	log        logr.Logger
	correlator *record.EventCorrelator

	queue chan *corev1.Event // closed by finish
	// lastNano is the timestamp that named the last Event. Only the goroutine
	// that calls term uses it.
	lastNano int64

	// Used by run only.
	podUID types.UID
}

func newEventRecorder(client client, o *options, log logr.Logger) *eventRecorder {
	r := &eventRecorder{
		events:     client.CoreV1(),
		podName:    o.podName,
		namespace:  o.namespace,
		id:         o.id,
		timeout:    o.requestTimeout(),
		limit:      backoff.Limit(o.retryPeriod),
		log:        log,
		correlator: record.NewEventCorrelatorWithOptions(record.CorrelatorOptions{}),
		queue:      make(chan *corev1.Event, eventQueueLength),
	}
	if o.podName != "" {
		r.pods = client.CoreV1().Pods(o.namespace)
	}
	return r
}

// term queues the Events for the start (started true) or the end of a term
// on the lock object and, with a pod name, the Pod. It never blocks. A nil
// recorder ignores it, so that callers need not check whether Events are on.
func (r *eventRecorder) term(started bool, lock corev1.ObjectReference) {
	if r == nil {
		return
	}
	reason, message := eventReasonStoppedLeading, r.id+" stopped leading"
	if started {
		reason, message = eventReasonLeaderElected, r.id+" became leader"
	}
	refs := []corev1.ObjectReference{lock}
	if r.podName != "" {
		// The UID is filled in when the Event is sent.
		refs = append(refs, corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: r.namespace, Name: r.podName})
	}
	for _, ref := range refs {
		select {
		case r.queue <- r.event(ref, reason, message):
		default:
			r.log.Info("dropped an event: too many waiting to be sent", "reason", reason, "object", ref.Kind+" "+ref.Name)
		}
	}
}

// event builds an Event as client-go's recorder does, with the elector ID as
// the reporting instance.
func (r *eventRecorder) event(ref corev1.ObjectReference, reason, message string) *corev1.Event {
	now := metav1.Now()
	// Names are unique per object only if timestamps are: coarse clocks
	// (and synctest's) can repeat one.
	nano := max(now.UnixNano(), r.lastNano+1)
	r.lastNano = nano
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:      recordutil.GenerateEventName(ref.Name, nano),
			Namespace: ref.Namespace,
		},
		InvolvedObject:      ref,
		Reason:              reason,
		Message:             message,
		FirstTimestamp:      now,
		LastTimestamp:       now,
		Count:               1,
		Type:                corev1.EventTypeNormal,
		Source:              corev1.EventSource{Component: eventComponent},
		ReportingController: eventComponent,
		ReportingInstance:   r.id,
	}
}

// finish makes run return once the queued Events are sent (or its context
// ends). Only the goroutine that calls term may call it.
func (r *eventRecorder) finish() { close(r.queue) }

// run sends queued Events until finish has been called and the queue is
// empty, or ctx ends; Events left then are dropped.
func (r *eventRecorder) run(ctx context.Context) {
	for ev := range r.queue {
		if ctx.Err() != nil {
			r.log.Info("dropped an event on shutdown", "reason", ev.Reason, "object", ev.InvolvedObject.Kind+" "+ev.InvolvedObject.Name)
			continue
		}
		r.send(ctx, ev)
	}
}

func (r *eventRecorder) send(ctx context.Context, ev *corev1.Event) {
	if ev.InvolvedObject.Kind == "Pod" && ev.InvolvedObject.UID == "" {
		// kubectl describe pod lists the Events that carry the Pod's UID.
		ev.InvolvedObject.UID = r.resolvePodUID(ctx)
	}
	res, err := r.correlator.EventCorrelate(ev)
	if err != nil {
		// Only the patch for a repeated Event failed; sending creates it anew.
		r.log.V(1).Info("cannot correlate an event", "err", err.Error())
	}
	if res.Skip {
		r.log.V(1).Info("event dropped by the rate limit", "reason", ev.Reason, "object", ev.InvolvedObject.Kind+" "+ev.InvolvedObject.Name)
		return
	}
	var delay time.Duration
	for try := 1; ; try++ {
		err := r.write(ctx, res.Event, res.Patch)
		if err == nil {
			return
		}
		if !retriable(err) || try == eventMaxTries || ctx.Err() != nil {
			r.log.Error(err, "cannot record an event; dropping it", "reason", ev.Reason)
			return
		}
		delay = backoff.Next(delay, r.limit)
		r.log.V(1).Info("recording an event failed; retrying", "err", err.Error(), "retryIn", delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
		}
	}
}

// write creates the Event or, for a repeat that the correlator counted,
// patches the existing one (and creates it if it is gone).
func (r *eventRecorder) write(ctx context.Context, ev *corev1.Event, patch []byte) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	events := r.events.Events(ev.Namespace)
	var got *corev1.Event
	var err error
	repeat := ev.Count > 1 && patch != nil
	if repeat {
		got, err = events.Patch(ctx, ev.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	}
	if !repeat || apierrors.IsNotFound(err) {
		ev := ev.DeepCopy()
		ev.ResourceVersion = ""
		got, err = events.Create(ctx, ev, metav1.CreateOptions{})
	}
	if err != nil {
		return fmt.Errorf("record event %s on %s %s/%s: %w", ev.Reason, ev.InvolvedObject.Kind, ev.Namespace, ev.InvolvedObject.Name, err)
	}
	r.correlator.UpdateState(got)
	return nil
}

// retriable reports whether sending again can succeed: the API server was
// not reached, or was overloaded or timed out. Any other answer (a rejected
// Event, RBAC) is final, as client-go's recorder decides.
func retriable(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return true
	}
	return apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err)
}

// resolvePodUID returns the Pod's UID, read once from the API server. It
// returns "" if that fails; the Event is then sent without it.
func (r *eventRecorder) resolvePodUID(ctx context.Context) types.UID {
	if r.podUID != "" {
		return r.podUID
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	pod, err := r.pods.Get(ctx, r.podName, metav1.GetOptions{})
	if err != nil {
		r.log.V(1).Info("cannot read the pod's UID for an event", "err", err.Error())
		return ""
	}
	r.podUID = pod.UID
	return pod.UID
}
