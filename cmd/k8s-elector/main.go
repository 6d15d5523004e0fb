// Command k8s-elector runs a Kubernetes leader election as a sidecar and
// reports the leader over HTTP. It maps its flags onto elector options; the
// election itself lives in package elector.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	elector "github.com/k8s-elector/elector"
	"github.com/k8s-elector/elector/command"
	"github.com/k8s-elector/elector/podlabel"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the elector could not start or stopped on an error
	exitUsage   = 2 // invalid flags or configuration
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default handling so that a second
	// one kills the process even if shutdown is stuck.
	context.AfterFunc(ctx, stop)
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// config holds the parsed flags.
type config struct {
	election      string
	httpAddr      string
	id            string
	idSet         bool
	kubeconfig    string
	lockType      string
	namespace     string
	ttl           time.Duration
	renewInterval time.Duration
	logLevel      string
	logFormat     string

	releaseDelay time.Duration
	allowResign  bool
	watch        bool
	podName      string
	podLabelKey  string
	events       bool
	version      bool

	command   []string // the arguments after --
	execGrace time.Duration
	execExit  string

	readyURL      string
	readyFailures int
	priority      int
	notifyURL     string
	statusFile    string
}

// renewIntervalHelp is the help of -renew-interval, with the timings it
// derives at the default TTL.
var renewIntervalHelp = func() string {
	t := elector.DefaultTimings(0)
	return fmt.Sprintf("How often the leader renews the lock while its renewals succeed; a failed renewal is retried every "+
		"retry period (TTL/6) until the renew deadline (TTL/3). 0 means 2.1 retry periods, at least 1s: %s at the "+
		"default TTL of %s, fewer than half the renewal writes of plain client-go, which renews every retry period. At least the "+
		"retry period; at most what lets the lease hold (TTL less TTL/50, the drift margin, must outlast the interval "+
		"plus a retry period, or 1s more for intervals under 1s). A crashed leader's followers take over after the TTL "+
		"less the time since its last renewal.", t.RenewInterval.Round(time.Millisecond), t.TTL)
}()

func newFlagSet(c *config) *flag.FlagSet {
	fs := flag.NewFlagSet("k8s-elector", flag.ContinueOnError)
	fs.StringVar(&c.election, "election", "", "The name of the election. This is required.")
	fs.StringVar(&c.httpAddr, "http", "", "The HTTP address (host:port) which leader state will be reported on.")
	fs.StringVar(&c.id, "id", "", "The ID of the election participant. If not set, the hostname, as reported by the kernel, is used.")
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "The kubeconfig file to use. If not set, in-cluster config will be used; outside a cluster, $KUBECONFIG or ~/.kube/config is used, as kubectl does.")
	fs.StringVar(&c.lockType, "lock-type", string(elector.LockLeases), "The type of Kubernetes object to use for the lock ("+lockTypes+")")
	fs.StringVar(&c.namespace, "namespace", "default", "The Kubernetes namespace to run the election in. If not set, elections will run in the default namespace.")
	fs.DurationVar(&c.ttl, "ttl", elector.DefaultTimings(0).TTL, "The TTL for the election. A whole number of seconds, at least 2s: the lock records whole seconds, so 1s is too short to hold.")
	fs.DurationVar(&c.renewInterval, "renew-interval", 0, renewIntervalHelp)
	fs.StringVar(&c.logLevel, "log-level", "info", "The log level: error, warn, info, debug, or a verbosity number (0 is info, 1 is debug, 2 also logs each renewal).")
	fs.StringVar(&c.logFormat, "log-format", "json", "The log format: json or console.")
	fs.DurationVar(&c.releaseDelay, "release-delay", 0, "How long a leader that is stopping reports not-leader before it releases the lock, so the application can stop its leader work first.")
	fs.BoolVar(&c.allowResign, "allow-resign", false, "Serve POST /resign?cooldown=30s (or ?to=ID, to hand over to that candidate) on the -http address, from loopback clients only, to hand leadership over.")
	fs.IntVar(&c.priority, "priority", 0, "This candidate's priority, 0 to 1000000. A leader that hands over gracefully names the ready candidate with the highest priority as its successor, and hands over to a candidate with a higher priority than its own once that one has been ready for a TTL.")
	fs.StringVar(&c.podName, "pod-name", "", "The name of this elector's Pod (from the Downward API). When set, the Pod is labelled <key>=leader or standby.")
	fs.StringVar(&c.podLabelKey, "pod-label-key", podlabel.DefaultKey, "The label key that -pod-name sets on the Pod.")
	fs.BoolVar(&c.events, "events", true, "Record Kubernetes Events when this elector starts or stops leading.")
	fs.BoolVar(&c.watch, "watch", true, "Watch the lock object: followers send no periodic requests and take over a released lock within milliseconds. With -watch=false the election polls the lock every retry period, as client-go does.")
	fs.DurationVar(&c.execGrace, "exec-grace", 0, "With a command after --: how long it has to exit after SIGTERM before it gets SIGKILL. 0 means TTL/3, or less at TTLs below 3s, so that it is dead before its lease ends. Must be shorter than the TTL.")
	fs.StringVar(&c.execExit, "exec-exit", string(command.ExitResign), "With a command after --: what to do when it exits on its own while leading. resign: release the lock, stay out for a TTL, and campaign again; exit: release the lock and exit with the command's exit code.")
	fs.StringVar(&c.readyURL, "ready-url", "", "The application's readiness endpoint, http://127.0.0.1:PORT/PATH (loopback or localhost only). When set, this elector campaigns only while it answers 2xx, probed every retry period; a leader steps down after -ready-failures failed probes in a row.")
	fs.IntVar(&c.readyFailures, "ready-failures", 3, "With -ready-url: how many failed probes in a row make a leader step down.")
	fs.StringVar(&c.notifyURL, "notify-url", "", "POST the status JSON to this URL (loopback or localhost only) at start and at every change of leadership, with its sequence number in the X-Elector-Sequence header.")
	fs.StringVar(&c.statusFile, "status-file", "", "Keep the status JSON in this file, replaced atomically at start and at every change of leadership, and with is_leader false before the lock is released.")
	fs.BoolVar(&c.version, "version", false, "Print the version and exit.")
	return fs
}

// envPrefix is the prefix of the environment variables that set flags.
const envPrefix = "ELECTOR_"

// envName is the environment variable for a flag: -lock-type is
// ELECTOR_LOCK_TYPE.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag not given on the command line from its
// environment variable, if that is set.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		v := getenv(name)
		if set[f.Name] || v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("invalid value %q for %s (flag -%s): %w", v, name, f.Name, err))
		}
	})
	return errors.Join(errs...)
}

// lockTypes lists the lock types for -h; elector.New checks the value.
var lockTypes = strings.Join([]string{string(elector.LockLeases), string(elector.LockEndpoints), string(elector.LockConfigMaps),
	string(elector.LockEndpointsLeases), string(elector.LockConfigMapsLeases)}, ", ")

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runWithEnv(ctx, args, os.Getenv, stdout, stderr)
}

func runWithEnv(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "handover" {
		return runHandover(ctx, args[1:], getenv, stdout, stderr)
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") && name == "to" {
			return usageError(stderr, errors.New("-to is a flag of the handover subcommand: k8s-elector handover -election=NAME -to=ID"))
		}
	}
	var c config
	fs := newFlagSet(&c)
	fs.SetOutput(io.Discard) // errors are reported below, in one line
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprintln(stdout, "Usage of k8s-elector:")
			fs.PrintDefaults()
			fmt.Fprintf(stdout, "\nEvery flag can also be set by an environment variable %s<FLAG>, such as\n"+
				"ELECTOR_ELECTION=example or ELECTOR_LOCK_TYPE=configmaps; a flag on the command line wins.\n", envPrefix)
			fmt.Fprint(stdout, "\nk8s-elector handover -election=NAME [-to=ID] asks the leader to hand over; see k8s-elector handover -h.\n")
			fmt.Fprint(stdout, "\nk8s-elector [flags] -- command [args...] runs the command only while leading: it starts\n"+
				"when a term starts, with ELECTOR_LOCK_UID and ELECTOR_LEADER_TRANSITIONS (the fencing token) in\n"+
				"its environment, and gets SIGTERM when the term ends, then SIGKILL after -exec-grace, before\n"+
				"anyone else can lead. SIGHUP, SIGUSR1 and SIGUSR2 are passed on to it.\n")
			return exitOK
		}
		return usageError(stderr, err)
	}
	if rest := fs.Args(); len(rest) > 0 || len(args) > 0 && afterDash(args, rest) {
		if !afterDash(args, rest) {
			return usageError(stderr, fmt.Errorf("unexpected argument %q: all settings are flags; put a command to run while leading after --", fs.Arg(0)))
		}
		if len(rest) == 0 {
			return usageError(stderr, errors.New("no command after --: want k8s-elector [flags] -- command [args...]"))
		}
		c.command = rest
	}
	if err := applyEnv(fs, getenv); err != nil {
		return usageError(stderr, err)
	}
	if c.version {
		fmt.Fprintln(stdout, versionString())
		return exitOK
	}
	fs.Visit(func(f *flag.Flag) { c.idSet = c.idSet || f.Name == "id" })
	c.idSet = c.idSet || getenv(envName("id")) != ""

	log, err := newLogger(stderr, c.logLevel, c.logFormat)
	if err != nil {
		return usageError(stderr, err)
	}
	// client-go logs through klog: send it to the same logger, so that every
	// line has one format.
	klog.SetLoggerWithOptions(log, klog.ContextualLogger(true))

	p, err := newParts(c, fs, log)
	if err != nil {
		return usageError(stderr, err)
	}
	var srv *http.Server
	serveErr := make(chan error, 1)
	if c.httpAddr != "" {
		ln, err := net.Listen("tcp", c.httpAddr)
		if err != nil {
			fmt.Fprintf(stderr, "k8s-elector: cannot serve HTTP on -http=%s: %v\n", c.httpAddr, err)
			return exitFailure
		}
		srv = newServer(p.handler(), log)
		// Requests get a context that shutdown cancels, so that /watch
		// streams end at once instead of holding Shutdown to its timeout.
		reqCtx, endRequests := context.WithCancel(context.Background())
		defer endRequests()
		srv.BaseContext = func(net.Listener) context.Context { return reqCtx }
		srv.RegisterOnShutdown(endRequests)
		go func() { serveErr <- srv.Serve(ln) }()
		log.Info("serving leader state over HTTP", "address", ln.Addr().String())
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if p.command != nil {
		stopForwarding := forwardSignals(p.command, log)
		defer stopForwarding()
	}
	// What follows the status starts before Run, so that it sees all of
	// it, and ends after Run, once it has said its last.
	follow := p.follow(ctx, log)
	runErr := make(chan error, 1)
	go func() { runErr <- p.run(ctx) }()

	code := exitOK
	stopped := false
	select {
	case err = <-runErr:
		stopped = true
	case serr := <-serveErr:
		log.Error(serr, "HTTP server stopped; stopping the elector")
		code = exitFailure
	case <-ctx.Done():
	}
	cancel()
	if !stopped {
		err = <-runErr
	}
	follow()
	var exited *command.ExitError
	switch {
	case errors.As(err, &exited):
		// -exec-exit=exit: the command's code is ours, so that the
		// kubelet restarts the container as if it were the command.
		code = exited.Code
	case err != nil:
		log.Error(err, "elector stopped")
		code = exitFailure
	}
	if srv != nil {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Error(err, "HTTP server did not shut down cleanly")
		}
	}
	return code
}

// afterDash reports whether rest, what flag parsing left of args, follows
// a "--" that ended the flags.
func afterDash(args, rest []string) bool {
	n := len(args) - len(rest)
	return n > 0 && args[n-1] == "--"
}

// commandFlagsAlone rejects the flags of a command without one.
func commandFlagsAlone(fs *flag.FlagSet) error {
	var errs []error
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "exec-grace" || f.Name == "exec-exit" {
			errs = append(errs, fmt.Errorf("-%s is set, but there is no command: put one after --", f.Name))
		}
	})
	return errors.Join(errs...)
}

// forwardSignals passes SIGHUP, SIGUSR1 and SIGUSR2 on to the command until
// the returned function is called; it returns once the forwarding goroutine
// has exited.
func forwardSignals(cmd *command.Command, log logr.Logger) (stop func()) {
	if len(forwardedSignals) == 0 {
		return func() {} // Notify with no signals would relay every one
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, forwardedSignals...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sig := range sigs {
			if err := cmd.Signal(sig); err != nil {
				log.V(1).Info("signal not forwarded", "signal", sig.String(), "reason", err.Error())
			} else {
				log.V(1).Info("signal forwarded to the command", "signal", sig.String())
			}
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(sigs)
		<-done
	}
}

func usageError(stderr io.Writer, err error) int {
	for _, line := range strings.Split(err.Error(), "\n") {
		for _, pkg := range []string{"elector: ", "command: ", "podlabel: "} {
			line = strings.TrimPrefix(line, pkg)
		}
		fmt.Fprintf(stderr, "k8s-elector: %s\n", line)
	}
	fmt.Fprintln(stderr, "Run k8s-elector -h for usage.")
	return exitUsage
}

// newServer returns the HTTP server for the elector's API, with timeouts
// and a header limit so that slow or hostile clients cannot hold it.
func newServer(h http.Handler, log logr.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          newStdLogger(log),
	}
}

// newStdLogger adapts the HTTP server's error log (broken connections, bad
// requests) to logr at debug level: they are per-request noise.
func newStdLogger(log logr.Logger) *stdlog.Logger {
	return stdlog.New(logWriter{log.WithName("http").V(1)}, "", 0)
}

type logWriter struct{ log logr.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Info(strings.TrimSpace(string(p)))
	return len(p), nil
}

// restConfig loads the client configuration: the -kubeconfig file if given
// (see loadKubeconfig), else the in-cluster configuration, else $KUBECONFIG
// or ~/.kube/config as kubectl loads them.
func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return loadKubeconfig(kubeconfig)
	}
	cfg, err := rest.InClusterConfig()
	if err == nil {
		return cfg, nil
	}
	if !errors.Is(err, rest.ErrNotInCluster) {
		return nil, fmt.Errorf("in-cluster config: %w", oneLine(err))
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("not running in a cluster, and no usable kubeconfig in $KUBECONFIG or ~/.kube/config (%w): set -kubeconfig", oneLine(err))
	}
	return cfg, nil
}

// newLogger builds the zap logger behind logr. Stack traces are off: an error
// line says what went wrong, and a normal shutdown prints none.
func newLogger(w io.Writer, level, format string) (logr.Logger, error) {
	var lvl zapcore.Level
	switch level {
	case "error":
		lvl = zapcore.ErrorLevel
	case "warn":
		lvl = zapcore.WarnLevel
	case "info":
		lvl = zapcore.InfoLevel
	case "debug":
		lvl = zapcore.DebugLevel
	default:
		v, err := strconv.Atoi(level)
		if err != nil || v < 0 || v > 10 {
			return logr.Logger{}, fmt.Errorf("invalid -log-level=%q: want error, warn, info, debug, or a verbosity from 0 to 10", level)
		}
		lvl = zapcore.Level(-v)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	enc.EncodeDuration = zapcore.StringDurationEncoder
	var encoder zapcore.Encoder
	switch format {
	case "json":
		encoder = zapcore.NewJSONEncoder(enc)
	case "console":
		enc.EncodeLevel = zapcore.CapitalLevelEncoder
		encoder = zapcore.NewConsoleEncoder(enc)
	default:
		return logr.Logger{}, fmt.Errorf("invalid -log-format=%q: want json or console", format)
	}
	core := zapcore.NewCore(encoder, zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zapr.NewLogger(zap.New(core, zap.AddCaller())), nil
}
