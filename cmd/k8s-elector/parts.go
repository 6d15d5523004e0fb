package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	elector "github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/command"
	"github.com/k8s-elector/elector/podlabel"
	"github.com/k8s-elector/elector/push"
	"github.com/k8s-elector/elector/readyurl"
)

// parts are what the flags ask for: the Elector, and the features built on
// it that the flags turn on.
type parts struct {
	elector *elector.Elector
	command *command.Command // nil without a command after --
	labels  *podlabel.Labeler
	sinks   []*push.Sink
	metrics prometheus.Gatherers
}

// newParts builds the parts from c. Like elector.New, it reports every
// problem at once, and touches no cluster.
func newParts(c config, fs *flag.FlagSet, log logr.Logger) (*parts, error) {
	var errs []error
	cfg, err := restConfig(c.kubeconfig)
	if err != nil {
		errs = append(errs, fmt.Errorf("Kubernetes client config: %w", err))
		cfg = &rest.Config{} // so that New reports every other problem too
	}
	opts := []elector.Option{
		elector.WithRESTConfig(cfg),
		elector.WithNamespace(c.namespace),
		elector.WithLockType(elector.LockType(c.lockType)),
		elector.WithTTL(c.ttl),
		elector.WithRenewInterval(c.renewInterval),
		elector.WithLogger(log),
		elector.WithReleaseDelay(c.releaseDelay),
		elector.WithResignEndpoint(c.allowResign),
		elector.WithPriority(c.priority),
		elector.WithWatch(c.watch),
		elector.WithPodName(c.podName),
		elector.WithEvents(c.events),
	}
	if c.idSet {
		opts = append(opts, elector.WithID(c.id))
	}
	p := &parts{}
	if c.readyURL != "" {
		if c.readyFailures < 1 {
			errs = append(errs, fmt.Errorf("-ready-failures=%d is too few: want 1 or more failed probes in a row before a leader steps down", c.readyFailures))
		}
		check, err := readyurl.Check(c.readyURL)
		if err != nil {
			errs = append(errs, err)
		} else {
			opts = append(opts, elector.WithCandidacyGate(check, max(c.readyFailures, 1)))
		}
	}
	if c.notifyURL != "" {
		s, err := push.NotifyURL(c.notifyURL)
		if err != nil {
			errs = append(errs, err)
		} else {
			p.sinks = append(p.sinks, s)
		}
	}
	if c.statusFile != "" {
		s, err := push.StatusFile(c.statusFile)
		if err != nil {
			errs = append(errs, err)
		} else {
			p.sinks = append(p.sinks, s)
			// The file says not-leader before the lock is released.
			opts = append(opts, elector.WithBeforeRelease(s.BeforeRelease))
		}
	}
	if c.podName != "" && c.podLabelKey == "" {
		errs = append(errs, fmt.Errorf("pod label key is empty: want a label key such as %q", podlabel.DefaultKey))
	} else if c.podName != "" {
		client, err := kubernetes.NewForConfig(withUserAgent(cfg))
		if err != nil {
			errs = append(errs, fmt.Errorf("Kubernetes client config: %w", err))
		}
		if p.labels, err = podlabel.New(client, c.namespace, c.podName, c.podLabelKey); err != nil {
			errs = append(errs, err)
		}
	}
	if c.command != nil {
		id := c.id
		if !c.idSet {
			id, _ = os.Hostname() // as elector.New defaults it, and reports a failure
		}
		cmd, err := command.New(command.Config{
			Name: c.command[0], Args: c.command[1:],
			Election: c.election, Namespace: c.namespace, ID: id,
			Timings: elector.DefaultTimings(c.ttl).WithRenewInterval(c.renewInterval),
			Grace:   c.execGrace,
			Exit:    command.ExitPolicy(c.execExit),
			Logger:  log,
		})
		if err != nil {
			errs = append(errs, err)
		} else {
			p.command = cmd
			opts = append(opts, cmd.Options()...)
			p.metrics = append(p.metrics, cmd.Metrics())
		}
	} else if err := commandFlagsAlone(fs); err != nil {
		errs = append(errs, err)
	}
	e, err := elector.New(c.election, opts...)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p.elector = e
	p.metrics = append(prometheus.Gatherers{e.Metrics(), binaryMetrics(c.election, e)}, p.metrics...)
	return p, nil
}

// withUserAgent returns a copy of cfg that names this program, unless cfg
// names one.
func withUserAgent(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = "k8s-elector"
	}
	return cfg
}

// handler serves the Elector's API, with the metrics of every part on
// GET /metrics.
func (p *parts) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", p.elector)
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.metrics, promhttp.HandlerOpts{}))
	return mux
}

// follow starts the parts that follow the status; call it before run. The
// function it returns waits for them, once run has returned.
func (p *parts) follow(ctx context.Context, log logr.Logger) (wait func()) {
	var waits []func()
	for _, s := range p.sinks {
		waits = append(waits, s.Follow(ctx, p.elector, log.WithName("push")))
	}
	if p.labels != nil {
		waits = append(waits, p.labels.Follow(ctx, p.elector, log.WithName("podlabel")))
	}
	return func() {
		for _, w := range waits {
			w()
		}
	}
}

// run runs the election, under the command if there is one.
func (p *parts) run(ctx context.Context) error {
	if p.command != nil {
		return p.command.Run(ctx, p.elector)
	}
	return p.elector.Run(ctx)
}
