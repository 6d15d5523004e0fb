package command

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are one Command's Prometheus metrics, in a registry of its own:
// the package registers nothing globally. Every series carries the election
// and identity as constant labels, as the Elector's own do, so that the two
// registries can be gathered together.
type metrics struct {
	registry *prometheus.Registry
	starts   prometheus.Counter
	exits    *prometheus.CounterVec
	kills    prometheus.Counter
}

// newMetrics returns the metrics of the command of candidate id in
// election (namespace/name).
func newMetrics(election, id string) *metrics {
	labels := prometheus.Labels{"election": election, "identity": id}
	m := &metrics{
		registry: prometheus.NewRegistry(),
		starts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "k8s_elector_command_starts_total", ConstLabels: labels,
			Help: "Times the command run while leading (the arguments after --) was started.",
		}),
		exits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "k8s_elector_command_exits_total", ConstLabels: labels,
			Help: "Exits of the command, by exit code (128 plus the signal number for a signal; 126 and 127 when it could not be started).",
		}, []string{"code"}),
		kills: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "k8s_elector_command_kills_total", ConstLabels: labels,
			Help: "Times the command was sent SIGKILL because it had not exited within its grace period.",
		}),
	}
	m.registry.MustRegister(m.starts, m.exits, m.kills)
	return m
}

// exited counts an exit of the command.
func (m *metrics) exited(code int) {
	m.exits.WithLabelValues(strconv.Itoa(code)).Inc()
}
