package main

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/runtime"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// loadKubeconfig loads the -kubeconfig file as kubectl does (paths in it are
// relative to its directory) and checks, without the network, what client-go
// would report only when the elector builds its client, and then without
// naming the file, or not at all: a context that names a missing user runs
// anonymously, and a server without a scheme gets a guessed one.
//
// Unlike clientcmd.BuildConfigFromFlags it reads this file only: an empty
// file is an error, not a cue to fall back to the in-cluster config. Every
// error is one line that names the file.
func loadKubeconfig(path string) (*rest.Config, error) {
	raw, err := clientcmd.LoadFromFile(path)
	if err != nil {
		// The decoder's words for these are about its own types.
		if runtime.IsNotRegisteredError(err) || strings.HasPrefix(err.Error(), "couldn't get version/kind") {
			err = &lineError{msg: "not a kubeconfig: want a YAML mapping with apiVersion: v1 and kind: Config", err: err}
		}
		return nil, fmt.Errorf("cannot load -kubeconfig=%s: %w", path, oneLine(err))
	}
	cfg, err := usableConfig(path, raw)
	if err != nil {
		return nil, fmt.Errorf("cannot use -kubeconfig=%s: %w", path, oneLine(err))
	}
	return cfg, nil
}

// usableConfig is the REST config of raw's current context, once that
// context, its cluster and its user pass the checks.
func usableConfig(path string, raw *clientcmdapi.Config) (*rest.Config, error) {
	if err := clientcmd.ResolveLocalPaths(raw); err != nil {
		return nil, err
	}
	if clientcmdapi.IsConfigEmpty(raw) {
		return nil, errors.New("the file holds no clusters, users or contexts: want a kubeconfig with a current-context")
	}
	clusterName, cluster, userName, user, err := currentContext(raw)
	if err != nil {
		return nil, err
	}
	var errs []error
	if err := checkCluster(cluster); err != nil {
		errs = append(errs, fmt.Errorf("cluster %q: %w", clusterName, err))
	}
	if user != nil {
		if err := checkUser(user); err != nil {
			errs = append(errs, fmt.Errorf("user %q: %w", userName, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	// The configAccess lets an auth provider store refreshed tokens in the
	// file, as BuildConfigFromFlags does.
	access := &clientcmd.ClientConfigLoadingRules{ExplicitPath: path}
	cfg, err := clientcmd.NewNonInteractiveClientConfig(*raw, "", &clientcmd.ConfigOverrides{}, access).ClientConfig()
	if err != nil {
		return nil, err
	}
	// What remains is what the elector's client would fail on: the exec
	// and auth provider plugins' settings and the TLS settings together.
	// TLSConfigFor builds those without the transport cache, which would
	// start a goroutine for client certificate files.
	if _, err := rest.TLSConfigFor(cfg); err != nil {
		return nil, err
	}
	if _, _, err := rest.DefaultServerUrlFor(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// currentContext returns the cluster and the user that raw's current-context
// names. The user is nil for a context without one, which client-go allows:
// its requests are anonymous.
func currentContext(raw *clientcmdapi.Config) (clusterName string, cluster *clientcmdapi.Cluster, userName string, user *clientcmdapi.AuthInfo, err error) {
	name := raw.CurrentContext
	if name == "" {
		return "", nil, "", nil, fmt.Errorf("current-context is not set: want one of the contexts (%s)", names(raw.Contexts))
	}
	kctx := raw.Contexts[name]
	if kctx == nil {
		return "", nil, "", nil, fmt.Errorf("current-context %q is not among the contexts (%s)", name, names(raw.Contexts))
	}
	var errs []error
	clusterName = kctx.Cluster
	if clusterName == "" {
		errs = append(errs, fmt.Errorf("context %q names no cluster: want one of the clusters (%s)", name, names(raw.Clusters)))
	} else if cluster = raw.Clusters[clusterName]; cluster == nil {
		errs = append(errs, fmt.Errorf("context %q names cluster %q, which is not among the clusters (%s)", name, clusterName, names(raw.Clusters)))
	}
	userName = kctx.AuthInfo
	if userName != "" {
		if user = raw.AuthInfos[userName]; user == nil {
			errs = append(errs, fmt.Errorf("context %q names user %q, which is not among the users (%s)", name, userName, names(raw.AuthInfos)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", nil, "", nil, err
	}
	return clusterName, cluster, userName, user, nil
}

// checkCluster checks the server URL and the CA, as the elector's client
// will use them.
func checkCluster(c *clientcmdapi.Cluster) error {
	var errs []error
	if err := checkServer(c.Server); err != nil {
		errs = append(errs, err)
	}
	if len(c.CertificateAuthorityData) > 0 || c.CertificateAuthority != "" {
		field := "certificate-authority-data"
		if len(c.CertificateAuthorityData) == 0 {
			field = "certificate-authority"
		}
		tls := rest.TLSClientConfig{CAData: c.CertificateAuthorityData, CAFile: c.CertificateAuthority}
		if _, err := rest.TLSConfigFor(&rest.Config{TLSClientConfig: tls}); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
	}
	return errors.Join(errs...)
}

// checkServer accepts an http or https URL with a host. client-go would
// accept a server without a scheme too, and guess http unless the cluster
// has TLS settings; with http it then sends none of the user's credentials.
func checkServer(server string) error {
	if server == "" {
		return errors.New("server is not set: want https://HOST:PORT")
	}
	if !strings.Contains(server, "://") {
		return fmt.Errorf("server %q has no scheme: want https://%s", server, server)
	}
	u, err := url.Parse(server)
	if err != nil {
		if uerr, ok := errors.AsType[*url.Error](err); ok {
			err = uerr.Err // its message quotes the URL again
		}
		return fmt.Errorf("server %q is not a URL: %w", server, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("server %q has scheme %q: want https", server, u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("server %q has no host: want https://HOST:PORT", server)
	}
	return nil
}

// checkUser checks the files and the exec plugin command that the user's
// credentials come from, and the client certificate and key.
func checkUser(u *clientcmdapi.AuthInfo) error {
	var errs []error
	if u.TokenFile != "" && u.Token == "" {
		// clientcmd reads it, but without saying which file of the
		// kubeconfig it is.
		if _, err := os.ReadFile(u.TokenFile); err != nil {
			errs = append(errs, fmt.Errorf("tokenFile: %w", err))
		}
	}
	if u.Exec != nil && u.Exec.Command != "" {
		// client-go looks the command up at the first request.
		if _, err := exec.LookPath(u.Exec.Command); err != nil {
			if eerr, ok := errors.AsType[*exec.Error](err); ok {
				err = eerr.Err // its message quotes the command again
			}
			err = fmt.Errorf("exec command %q: %w", u.Exec.Command, err)
			if hint := strings.TrimSpace(u.Exec.InstallHint); hint != "" {
				err = fmt.Errorf("%w (installHint: %s)", err, hint)
			}
			errs = append(errs, err)
		}
	}
	hasCert := len(u.ClientCertificateData) > 0 || u.ClientCertificate != ""
	hasKey := len(u.ClientKeyData) > 0 || u.ClientKey != ""
	if hasCert && hasKey { // one without the other is reported by clientcmd
		certField, keyField := "client-certificate-data", "client-key-data"
		if len(u.ClientCertificateData) == 0 {
			certField = "client-certificate"
		}
		if len(u.ClientKeyData) == 0 {
			keyField = "client-key"
		}
		tls := rest.TLSClientConfig{
			CertData: u.ClientCertificateData, CertFile: u.ClientCertificate,
			KeyData: u.ClientKeyData, KeyFile: u.ClientKey,
		}
		if _, err := rest.TLSConfigFor(&rest.Config{TLSClientConfig: tls}); err != nil {
			errs = append(errs, fmt.Errorf("%s and %s: %w", certField, keyField, err))
		}
	}
	return errors.Join(errs...)
}

// names lists m's keys for an error message: sorted, quoted, and no more
// than five.
func names[V any](m map[string]V) string {
	if len(m) == 0 {
		return "the file has none"
	}
	const most = 5
	keys := slices.Sorted(maps.Keys(m))
	var s []string
	for i, k := range keys {
		if i == most {
			s = append(s, fmt.Sprintf("and %d more", len(keys)-most))
			break
		}
		s = append(s, strconv.Quote(k))
	}
	return strings.Join(s, ", ")
}

// lineError is an error whose message is flattened onto one line.
type lineError struct {
	msg string
	err error
}

func (e *lineError) Error() string { return e.msg }
func (e *lineError) Unwrap() error { return e.err }

// oneLine returns err with its message on one line, so that each problem
// is one line of the CLI's output: clientcmd reports several problems as
// "[a, b]" aggregates, YAML errors can span lines, and names in a
// kubeconfig can hold any character.
func oneLine(err error) error {
	msg := flatten(err)
	if msg == err.Error() {
		return err
	}
	return &lineError{msg: msg, err: err}
}

func flatten(err error) string {
	agg, ok := err.(utilerrors.Aggregate)
	if !ok || len(agg.Errors()) < 2 {
		return singleLine(err.Error())
	}
	var parts []string
	for _, e := range agg.Errors() {
		if p := flatten(e); !slices.Contains(parts, p) {
			parts = append(parts, p)
		}
	}
	msg := strings.Join(parts, "; ")
	if clientcmd.IsConfigurationInvalid(err) {
		msg = "invalid configuration: " + msg
	}
	return msg
}

// singleLine joins s's lines with "; " (with " " after a line that ends in
// a colon) and escapes any other control character.
func singleLine(s string) string {
	var b strings.Builder
	for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if b.Len() > 0 {
			if strings.HasSuffix(b.String(), ":") {
				b.WriteString(" ")
			} else {
				b.WriteString("; ")
			}
		}
		for _, r := range line {
			switch {
			case r == '\t':
				b.WriteRune(' ')
			case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
				q := strconv.QuoteRune(r)
				b.WriteString(q[1 : len(q)-1])
			default:
				b.WriteRune(r)
			}
		}
	}
	return b.String()
}
