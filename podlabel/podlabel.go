// Package podlabel labels a candidate's own Pod with its part in the
// election, leader or standby, so that a Service that selects the leader
// value routes to the leader only.
//
//	l, err := podlabel.New(client, namespace, os.Getenv("POD_NAME"), "")
//	if err != nil {
//		return err
//	}
//	wait := l.Follow(ctx, e, log) // before Run
//	err = e.Run(ctx)
//	wait() // the Pod says standby, or the shutdown budget is spent
//
// The label is written with a JSON merge patch that touches no other label,
// from a goroutine of its own: a failed patch is logged and retried with
// backoff, with the latest value, and never delays the election. Labels lag
// leadership: during a handover, or while a candidate cannot reach the API
// server, no Pod or two Pods may carry the leader value. Where two leaders
// must never act at once, fence the work with the term's token instead (see
// elector.Status). It needs RBAC permission to patch pods.
package podlabel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	elector "github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/internal/backoff"
)

// DefaultKey is the label key New uses when it is given none.
const DefaultKey = "k8s-elector/status"

// The values of the label.
const (
	Leader  = "leader"
	Standby = "standby"
)

// A Labeler labels one Pod. Build it with New and start it with Follow. It
// is safe for concurrent use.
type Labeler struct {
	pods corev1client.PodInterface
	ref  string // namespace/name, for messages
	name string
	key  string
}

// New returns a Labeler for the Pod named pod in namespace, the election's
// (which elector.New checks), that sets the label key, or DefaultKey when
// key is "". Like elector.New, it reports every problem at once, joined
// (errors.Join), and does not touch the cluster.
func New(client kubernetes.Interface, namespace, pod, key string) (*Labeler, error) {
	if key == "" {
		key = DefaultKey
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("podlabel: "+format, args...))
	}
	if isNil(client) {
		if client != nil {
			bad("got a nil %T: pass a clientset", client)
		} else {
			bad("client is nil: pass a clientset, such as kubernetes.NewForConfig's or fake.NewClientset()")
		}
	}
	if pod == "" {
		bad("pod name is empty: want this candidate's Pod, such as metadata.name through the Downward API")
	} else if msgs := validation.IsDNS1123Subdomain(pod); len(msgs) > 0 {
		bad("pod name %q is not a valid Pod name: %s", pod, strings.Join(msgs, "; "))
	}
	if msgs := content.IsLabelKey(key); len(msgs) > 0 {
		bad("pod label key %q is not a valid label key: %s", key, strings.Join(msgs, "; "))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &Labeler{
		pods: client.CoreV1().Pods(namespace),
		ref:  namespace + "/" + pod,
		name: pod,
		key:  key,
	}, nil
}

// isNil reports whether c is nil or holds a nil pointer.
func isNil(c kubernetes.Interface) bool {
	if c == nil {
		return true
	}
	v := reflect.ValueOf(c)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// Follow keeps the Pod's label at what e says of this candidate: Standby
// from the start, Leader while Status().IsLeader, and Standby again when
// that ends and when Run returns. It observes e at once (Elector.Observe),
// so call it before e.Run, and it works on a goroutine of its own, which
// ends once the Run that was running then, or started since, has returned
// and the Pod carries Standby, or the time for that is up: the shutdown
// budget less the renew deadline (Timings), from Run's return. Without a
// Run, it never ends. wait blocks until it has ended; call it after Run
// returns, to hand the Pod over labelled standby before the process exits.
//
// Each patch is bounded as the election's requests are (half the renew
// deadline, at least 1s); a failed one is retried with backoff up to the
// retry period (0.5s to 30s), at once when the value changes, always with
// the latest value, so that a burst of changes costs one patch. Failures are
// logged on log, once until a patch succeeds again.
//
// ctx carries values only: the label follows the election until Run
// returns, however long after ctx ends that is.
func (l *Labeler) Follow(ctx context.Context, e *elector.Elector, log logr.Logger) (wait func()) {
	ctx = context.WithoutCancel(ctx)
	t := e.Timings()
	f := &follower{
		Labeler: l,
		timeout: t.RequestTimeout,
		limit:   backoff.Limit(t.RetryPeriod),
		budget:  t.ShutdownBudget - t.RenewDeadline,
		log:     log.WithValues("pod", l.ref),
	}
	statuses := e.Observe(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.run(ctx, statuses)
	}()
	return func() { <-done }
}

// follower is the state of one Follow.
type follower struct {
	*Labeler
	timeout time.Duration // per request
	limit   time.Duration // longest wait between retries
	budget  time.Duration // for the last label, once Run has returned
	log     logr.Logger

	applied string // the value last patched successfully; "" before the first
	lastErr error  // of the last failed patch; nil after a success
}

// value is the label that s asks for.
func value(s elector.Status) string {
	if s.IsLeader {
		return Leader
	}
	return Standby
}

// run patches the Pod with the value that statuses ask for last, until
// statuses is closed (Run returned) and the Pod says Standby, or the budget
// from then is spent.
func (f *follower) run(ctx context.Context, statuses <-chan elector.Status) {
	want := Standby
	var delay time.Duration // the last wait between retries; 0 after a success
	var retry *time.Timer   // set while a failed patch waits for its retry
	stopRetry := func() {
		if retry != nil {
			retry.Stop()
			retry = nil
		}
	}
	defer stopRetry()
	cancel := context.CancelFunc(func() {}) // of the budget, once Run has returned
	defer func() { cancel() }()
	// take notes what a status, or the end of statuses, asks for: a new
	// value, or Run's return, is tried at once.
	take := func(s elector.Status, ok bool) {
		if !ok {
			statuses = nil
			ctx, cancel = context.WithTimeout(ctx, f.budget)
			want = Standby
			stopRetry()
			return
		}
		if v := value(s); v != want {
			want = v
			stopRetry()
		}
	}
	for {
		// Take every status that is ready before patching: the latest wins.
		for ready := statuses != nil; ready; {
			select {
			case s, ok := <-statuses:
				take(s, ok)
				ready = ok
			default:
				ready = false
			}
		}
		if want == f.applied && statuses == nil {
			return
		}
		if want != f.applied && retry == nil {
			if ctx.Err() != nil {
				f.giveUp(ctx, f.lastErr, want)
				return
			}
			if err := f.patch(ctx, want); err != nil {
				if ctx.Err() != nil {
					f.giveUp(ctx, err, want)
					return
				}
				delay = backoff.Next(delay, f.limit)
				f.failed(err, want, delay)
				retry = time.NewTimer(delay)
			} else {
				delay = 0
			}
			continue
		}
		var retryC <-chan time.Time
		if retry != nil {
			retryC = retry.C
		}
		select {
		case s, ok := <-statuses:
			take(s, ok)
		case <-retryC:
			retry = nil
		case <-ctx.Done(): // only once Run has returned
			f.giveUp(ctx, f.lastErr, want)
			return
		}
	}
}

// failed logs a failed patch: an error the first time, V(1) while the same
// error repeats.
func (f *follower) failed(err error, want string, delay time.Duration) {
	if f.lastErr == nil || err.Error() != f.lastErr.Error() {
		f.log.Error(err, "cannot label the pod; retrying", "label", f.key+"="+want, "retryIn", delay)
	} else {
		f.log.V(1).Info("labelling the pod failed again", "err", err.Error(), "retryIn", delay)
	}
	f.lastErr = err
}

// giveUp logs that the last label did not stick before ctx ended, with the
// error of the last patch (nil if none failed).
func (f *follower) giveUp(ctx context.Context, err error, want string) {
	if err == nil {
		err = context.Cause(ctx)
	}
	f.log.Error(err, "gave up labelling the pod on shutdown", "label", f.key+"="+want)
}

// patch sets the label with a JSON merge patch, which adds the label to a Pod
// without labels and leaves every other label alone.
func (f *follower) patch(ctx context.Context, value string) error {
	body, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"labels": map[string]string{f.key: value}},
	})
	if err != nil {
		return err // unreachable: maps of strings always marshal
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	if _, err := f.pods.Patch(ctx, f.name, types.MergePatchType, body, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("patch pod %s: %w", f.ref, err)
	}
	f.applied = value
	if f.lastErr != nil {
		f.lastErr = nil
		f.log.Info("labelling the pod succeeds again", "label", f.key+"="+value)
	} else {
		f.log.V(1).Info("labelled the pod", "label", f.key+"="+value)
	}
	return nil
}
