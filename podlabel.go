package elector

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/k8s-elector/elector/internal/backoff"
)

// The values of the Pod label that WithPodName sets.
const (
	PodLabelLeader  = "leader"
	PodLabelStandby = "standby"
)

// podLabeler keeps the label of the Elector's Pod at the value last asked for.
// set only records the value; run, on a goroutine of its own, patches the Pod
// and retries failures, always with the latest value, so that a burst of
// changes costs one patch.
type podLabeler struct {
	pods    corev1client.PodInterface
	ref     string // namespace/name, for messages
	name    string
	key     string
	timeout time.Duration // per request
	limit   time.Duration // longest wait between retries
	log     logr.Logger

	kick chan struct{} // capacity 1: the wanted value changed, or finish was called

	mu        sync.Mutex
	want      string
	finishing bool
	uid       types.UID // of the Pod, from the last patch response

	// Used by run only.
	applied string // the value last patched successfully
	lastErr string
}

func newPodLabeler(client Client, o *options, log logr.Logger) *podLabeler {
	return &podLabeler{
		pods:    client.CoreV1().Pods(o.namespace),
		ref:     o.namespace + "/" + o.podName,
		name:    o.podName,
		key:     o.podLabelKey,
		timeout: o.requestTimeout(),
		limit:   backoff.Limit(o.retryPeriod),
		log:     log.WithValues("pod", o.namespace+"/"+o.podName),
		kick:    make(chan struct{}, 1),
	}
}

// set asks for the label to be value. It never blocks. A nil labeler ignores
// it, so that callers need not check whether labelling is on.
func (l *podLabeler) set(value string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	changed := l.want != value
	l.want = value
	l.mu.Unlock()
	if changed {
		l.wake()
	}
}

func (l *podLabeler) wake() {
	select {
	case l.kick <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// finish asks for the standby label and for run to return once the Pod
// carries it (or its context ends).
func (l *podLabeler) finish() {
	l.mu.Lock()
	l.want, l.finishing = PodLabelStandby, true
	l.mu.Unlock()
	l.wake()
}

func (l *podLabeler) state() (want string, finishing bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.want, l.finishing
}

// podUID returns the Pod's UID once a patch has succeeded, else "".
func (l *podLabeler) podUID() types.UID {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.uid
}

// run patches the Pod until finish has been called and the label is as
// wanted, or ctx ends.
func (l *podLabeler) run(ctx context.Context) {
	var delay time.Duration
	for {
		want, finishing := l.state()
		if want == l.applied {
			if finishing {
				return
			}
			select {
			case <-l.kick:
				continue
			case <-ctx.Done():
				return
			}
		}
		err := l.patch(ctx, want)
		if err == nil {
			delay = 0
			continue
		}
		if ctx.Err() != nil {
			l.log.Error(err, "gave up labelling the pod on shutdown", "label", l.key+"="+want)
			return
		}
		delay = backoff.Next(delay, l.limit)
		if err.Error() != l.lastErr {
			l.lastErr = err.Error()
			l.log.Error(err, "cannot label the pod; retrying", "label", l.key+"="+want, "retryIn", delay)
		} else {
			l.log.V(1).Info("labelling the pod failed again", "err", err.Error(), "retryIn", delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-l.kick: // a new value: try it at once
		case <-ctx.Done():
		}
		t.Stop()
	}
}

// patch sets the label with a JSON merge patch, which adds the label to a Pod
// without labels and leaves every other label alone.
func (l *podLabeler) patch(ctx context.Context, value string) error {
	body, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"labels": map[string]string{l.key: value}},
	})
	if err != nil {
		return err // unreachable: maps of strings always marshal
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	pod, err := l.pods.Patch(ctx, l.name, types.MergePatchType, body, metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("patch pod %s: %w", l.ref, err)
	}
	l.mu.Lock()
	l.uid = pod.UID
	l.mu.Unlock()
	l.applied = value
	if l.lastErr != "" {
		l.lastErr = ""
		l.log.Info("labelling the pod succeeds again", "label", l.key+"="+value)
	} else {
		l.log.V(1).Info("labelled the pod", "label", l.key+"="+value)
	}
	return nil
}
