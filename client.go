package elector

import (
	"context"
	"fmt"
	"strings"

	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// lockClient returns the client for the configured options. It does no I/O.
func (o *options) lockClient() (client, error) {
	if o.client != nil {
		return o.client, nil
	}
	cfg := *o.restConfig
	if cfg.UserAgent == "" {
		cfg.UserAgent = "k8s-elector"
	}
	if o.groupClient {
		if cfg.QPS == 0 && cfg.RateLimiter == nil {
			// A Group's leaders renew many locks on one client: at the
			// default TTL, 1,000 leaders renew 300 times a second, and
			// client-go's default limit of 5 a second would make them
			// lose their leases. The API server's priority and fairness
			// limits them instead.
			cfg.RateLimiter = flowcontrol.NewFakeAlwaysRateLimiter()
		}
	}
	if lockTypeOf(o.lockType).deprecated && cfg.WarningHandler == nil && cfg.WarningHandlerWithContext == nil {
		cfg.WarningHandlerWithContext = endpointsWarningFilter{}
	}
	c, err := newGroupClients(&cfg)
	if err != nil {
		return nil, fmt.Errorf("elector: Kubernetes client config: %w", err)
	}
	return c, nil
}

// groupClients is a client built from a REST config: the two API groups'
// clients share one HTTP client and so one connection pool, as a full
// clientset's groups do.
type groupClients struct {
	coordination coordinationv1client.CoordinationV1Interface
	core         corev1client.CoreV1Interface
}

func (c *groupClients) CoordinationV1() coordinationv1client.CoordinationV1Interface {
	return c.coordination
}

func (c *groupClients) CoreV1() corev1client.CoreV1Interface { return c.core }

func newGroupClients(cfg *rest.Config) (*groupClients, error) {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	coordination, err := coordinationv1client.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	core, err := corev1client.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	return &groupClients{coordination: coordination, core: core}, nil
}

// endpointsWarningFilter drops the API server's "v1 Endpoints is deprecated"
// warning, which it sends with every request on an Endpoints lock; the
// Elector logs that deprecation once itself. Other warnings are logged as
// client-go logs them by default.
type endpointsWarningFilter struct{}

func (endpointsWarningFilter) HandleWarningHeaderWithContext(ctx context.Context, code int, agent, message string) {
	if strings.Contains(message, "Endpoints is deprecated") {
		return
	}
	rest.WarningLogger{}.HandleWarningHeaderWithContext(ctx, code, agent, message)
}
