package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// kubeconfig writes a syntactically valid kubeconfig pointing at addr.
func kubeconfig(t *testing.T, server string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "` + server + `"}
users:
- name: u
  user: {token: t}
contexts:
- name: c
  context: {cluster: c, user: u}
current-context: c
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runCLI(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelpListsEveryFlag(t *testing.T) {
	code, out, _ := runCLI(context.Background(), "-h")
	if code != exitOK {
		t.Fatalf("-h exit code %d, want 0", code)
	}
	for _, want := range []string{
		"-election string\n    \tThe name of the election. This is required.",
		"-http string\n    \tThe HTTP address (host:port) which leader state will be reported on.",
		"-id string\n    \tThe ID of the election participant. If not set, the hostname, as reported by the kernel, is used.",
		"-kubeconfig string\n    \tThe kubeconfig file to use. If not set, in-cluster config will be used",
		"$KUBECONFIG or ~/.kube/config",
		"-lock-type string\n    \tThe type of Kubernetes object to use for the lock (leases, endpoints, configmaps, endpointsleases, configmapsleases) (default \"leases\")",
		"-namespace string\n    \tThe Kubernetes namespace to run the election in. If not set, elections will run in the default namespace. (default \"default\")",
		"-ttl duration\n    \tThe TTL for the election. A whole number of seconds, at least 2s: the lock records whole seconds, so 1s is too short to hold. (default 10s)",
		"-log-level string",
		"-log-format string",
		"-pod-name string\n    \tThe name of this elector's Pod (from the Downward API). When set, the Pod is labelled <key>=leader or standby.",
		"-pod-label-key string\n    \tThe label key that -pod-name sets on the Pod. (default \"k8s-elector/status\")",
		"-events\n    \tRecord Kubernetes Events when this elector starts or stops leading. (default true)",
		"-exec-grace duration\n    \tWith a command after --: how long it has to exit after SIGTERM before it gets SIGKILL.",
		"-exec-exit string\n    \tWith a command after --: what to do when it exits on its own while leading.",
		"k8s-elector [flags] -- command [args...] runs the command only while leading",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("-h output lacks %q:\n%s", want, out)
		}
	}
}

func TestBadInput(t *testing.T) {
	kc := kubeconfig(t, "https://127.0.0.1:1")
	garbage := filepath.Join(t.TempDir(), "garbage")
	if err := os.WriteFile(garbage, []byte("\x00\x01not: [yaml"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok := []string{"-kubeconfig=" + kc, "-election=example"}
	notExec := filepath.Join(t.TempDir(), "program")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing election", []string{"-kubeconfig=" + kc}, "election name is required"},
		{"uppercase election", []string{"-kubeconfig=" + kc, "-election=Example"}, `election name "Example" is not a valid object name`},
		{"slash in election", []string{"-kubeconfig=" + kc, "-election=a/b"}, "is not a valid object name"},
		{"long election", []string{"-kubeconfig=" + kc, "-election=" + strings.Repeat("a", 300)}, "no more than 253"},
		{"ttl zero", append(ok, "-ttl=0"), "TTL 0s is too short"},
		{"ttl 1s", append(ok, "-ttl=1s"), "TTL 1s is too short: want a whole number of seconds, at least 2s"},
		{"ttl negative", append(ok, "-ttl=-1s"), "TTL -1s is too short"},
		{"ttl garbage", append(ok, "-ttl=abc"), `invalid value "abc" for flag -ttl`},
		{"ttl fractional", append(ok, "-ttl=2500ms"), "TTL 2.5s is not a whole number of seconds"},
		{"renew interval negative", append(ok, "-renew-interval=-1s"), "renew interval -1s is negative"},
		{"renew interval garbage", append(ok, "-renew-interval=often"), `invalid value "often" for flag -renew-interval`},
		{"renew interval below the retry period", append(ok, "-renew-interval=1s"), "renew interval 1s is shorter than the retry period 1.666666666s"},
		{"renew interval too long", append(ok, "-renew-interval=9s"), "renew interval 9s is too long for a TTL of 10s"},
		{"grace too long for the renew interval", append(ok, "-ttl=6s", "-renew-interval=4s", "-exec-grace=1s", "--", "sh"), "command grace period 1s is too long for a TTL of 6s"},
		{"empty id", append(ok, "-id="), `ID "" is empty`},
		{"unknown lock", append(ok, "-lock-type=etcd"), `lock type "etcd" is not supported: want one of leases, endpoints, configmaps, endpointsleases, configmapsleases`},
		{"empty namespace", append(ok, "-namespace="), "namespace is empty"},
		{"bad pod name", append(ok, "-pod-name=Pod_A"), `pod name "Pod_A" is not a valid Pod name`},
		{"bad pod label key", append(ok, "-pod-name=pod-a", "-pod-label-key=a/b/c"), `pod label key "a/b/c" is not a valid label key`},
		{"empty pod label key", append(ok, "-pod-name=pod-a", "-pod-label-key="), "pod label key is empty"},
		{"events garbage", append(ok, "-events=maybe"), `invalid boolean value "maybe" for -events`},
		{"unknown flag", append(ok, "-leader-elect"), "flag provided but not defined: -leader-elect"},
		{"stray argument", append(ok, "extra"), `unexpected argument "extra"`},
		{"bad log level", append(ok, "-log-level=loud"), `invalid -log-level="loud"`},
		{"bad log format", append(ok, "-log-format=xml"), `invalid -log-format="xml"`},
		{"missing kubeconfig", []string{"-kubeconfig=/nonexistent/kubeconfig", "-election=example"}, "cannot load -kubeconfig=/nonexistent/kubeconfig"},
		{"garbage kubeconfig", []string{"-kubeconfig=" + garbage, "-election=example"}, "cannot load -kubeconfig=" + garbage},
		{"kubeconfig and flag problems together", []string{"-kubeconfig=/nonexistent", "-election=Bad"}, "not a valid object name"},
		{"no command after --", append(ok, "--"), "no command after --: want k8s-elector [flags] -- command [args...]"},
		{"stray argument before --", append(ok, "extra", "--", "sh"), `unexpected argument "extra"`},
		{"command not found", append(ok, "--", "no-such-command-k8s-elector"), `the command "no-such-command-k8s-elector" cannot be run: executable file not found in $PATH`},
		{"command not executable", append(ok, "--", notExec), `the command "` + notExec + `" cannot be run: permission denied`},
		{"command a directory", append(ok, "--", "/"), `the command "/" cannot be run: is a directory`},
		{"empty command", append(ok, "--", ""), "the command is empty"},
		{"negative grace", append(ok, "-exec-grace=-1s", "--", "sh"), "command grace period -1s is negative"},
		{"grace of the TTL", append(ok, "-ttl=6s", "-exec-grace=6s", "--", "sh"), "command grace period 6s must be shorter than the TTL 6s"},
		{"grace too long", append(ok, "-ttl=6s", "-exec-grace=3s", "--", "sh"), "command grace period 3s is too long for a TTL of 6s"},
		{"bad exit policy", append(ok, "-exec-exit=restart", "--", "sh"), `command exit policy "restart" is not supported: want resign or exit`},
		{"grace without a command", append(ok, "-exec-grace=1s"), "-exec-grace is set, but there is no command: put one after --"},
		{"exit policy without a command", append(ok, "-exec-exit=exit"), "-exec-exit is set, but there is no command"},
		{"remote ready URL", append(ok, "-ready-url=http://10.1.2.3:8080/ready"), `ready URL: "http://10.1.2.3:8080/ready" is not on this host`},
		{"ready URL garbage", append(ok, "-ready-url=http://[::1"), "ready URL:"},
		{"ready failures zero", append(ok, "-ready-url=http://127.0.0.1:8080/ready", "-ready-failures=0"), "-ready-failures=0 is too few: want 1 or more"},
		{"remote notify URL", append(ok, "-notify-url=https://example.com/hook"), `notify URL: "https://example.com/hook" is not on this host`},
		{"kubeconfig and command problems together", []string{"-kubeconfig=/nonexistent", "-election=example", "--", "no-such-command-k8s-elector"}, "cannot be run"},
		{"negative priority", append(ok, "-priority=-1"), "priority -1 is out of range: want 0 (the default) to 1000000"},
		{"priority too high", append(ok, "-priority=1000001"), "priority 1000001 is out of range"},
		{"priority garbage", append(ok, "-priority=high"), `invalid value "high" for flag -priority`},
		{"-to without handover", append(ok, "-to=b"), "-to is a flag of the handover subcommand: k8s-elector handover -election=NAME -to=ID"},
		{"status file in a missing directory", append(ok, "-status-file=/nonexistent/status.json"), "status file /nonexistent/status.json cannot be written: directory /nonexistent: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(context.Background(), tc.args...)
			if code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, errOut)
			}
			if !strings.HasSuffix(errOut, "Run k8s-elector -h for usage.\n") {
				t.Errorf("stderr does not end with the usage hint:\n%s", errOut)
			}
			if out != "" {
				t.Errorf("stdout = %q, want nothing", out)
			}
			for _, line := range strings.Split(strings.TrimSpace(errOut), "\n") {
				if !strings.HasPrefix(line, "k8s-elector: ") && !strings.HasPrefix(line, "Run k8s-elector -h") {
					t.Errorf("stray stderr line %q", line)
				}
			}
		})
	}
}

func TestHTTPAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, _, errOut := runCLI(context.Background(), "-kubeconfig="+kubeconfig(t, "https://127.0.0.1:1"),
		"-election=example", "-http="+ln.Addr().String())
	if code != exitFailure {
		t.Errorf("exit code %d, want %d", code, exitFailure)
	}
	if want := "cannot serve HTTP on -http=" + ln.Addr().String(); !strings.Contains(errOut, want) {
		t.Errorf("stderr lacks %q:\n%s", want, errOut)
	}
}

func TestMalformedHTTPAddress(t *testing.T) {
	code, _, errOut := runCLI(context.Background(), "-kubeconfig="+kubeconfig(t, "https://127.0.0.1:1"),
		"-election=example", "-http=localhost:notaport")
	if code != exitFailure || !strings.Contains(errOut, "cannot serve HTTP on -http=localhost:notaport") {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
}

// TestShutdownIsClean cancels a running CLI, as SIGTERM does: it must exit 0
// without a stack trace even though the API server was never reachable.
func TestShutdownIsClean(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(1500*time.Millisecond, cancel)
	code, _, errOut := runCLI(ctx, "-kubeconfig="+kubeconfig(t, "https://127.0.0.1:1"),
		"-election=example", "-id=pod-a", "-ttl=3s", "-http=127.0.0.1:0")
	if code != exitOK {
		t.Errorf("exit code %d, want 0; stderr:\n%s", code, errOut)
	}
	for _, bad := range []string{"panic", "goroutine ", "stacktrace"} {
		if strings.Contains(errOut, bad) {
			t.Errorf("stderr contains %q:\n%s", bad, errOut)
		}
	}
	for _, want := range []string{`"msg":"joining election"`, `"msg":"stopping"`, `"msg":"stopped"`, `"identity":"pod-a"`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("log lacks %s:\n%s", want, errOut)
		}
	}
	// The unreachable API server is reported once as an error, not once per retry.
	if n := strings.Count(errOut, `"level":"error"`); n != 1 {
		t.Errorf("%d error lines, want 1:\n%s", n, errOut)
	}
}

func TestEnvironmentSetsFlagsAndFlagsWin(t *testing.T) {
	kc := kubeconfig(t, "https://127.0.0.1:1")
	env := map[string]string{
		"ELECTOR_KUBECONFIG":    kc,
		"ELECTOR_ELECTION":      "Bad_Name", // overridden below
		"ELECTOR_TTL":           "2500ms",
		"ELECTOR_LOCK_TYPE":     "nope",
		"ELECTOR_POD_LABEL_KEY": "a/b/c", // overridden below
	}
	var out, errb bytes.Buffer
	code := runWithEnv(context.Background(), []string{"-election=good", "-pod-label-key=x/y"}, func(k string) string { return env[k] }, &out, &errb)
	if code != exitUsage {
		t.Fatalf("exit code %d, want %d", code, exitUsage)
	}
	got := errb.String()
	if strings.Contains(got, "a/b/c") {
		t.Errorf("ELECTOR_POD_LABEL_KEY overrode -pod-label-key:\n%s", got)
	}
	for _, want := range []string{"TTL 2.5s is not a whole number", `lock type "nope"`} {
		if !strings.Contains(got, want) {
			t.Errorf("stderr lacks %q (from the environment):\n%s", want, got)
		}
	}
	if strings.Contains(got, "Bad_Name") {
		t.Errorf("ELECTOR_ELECTION overrode -election:\n%s", got)
	}
	errb.Reset()
	env["ELECTOR_TTL"] = "soon"
	runWithEnv(context.Background(), []string{"-election=good"}, func(k string) string { return env[k] }, &out, &errb)
	if want := `invalid value "soon" for ELECTOR_TTL (flag -ttl)`; !strings.Contains(errb.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, errb.String())
	}
	errb.Reset()
	env["ELECTOR_EVENTS"] = "maybe"
	runWithEnv(context.Background(), []string{"-election=good"}, func(k string) string { return env[k] }, &out, &errb)
	if want := `invalid value "maybe" for ELECTOR_EVENTS (flag -events)`; !strings.Contains(errb.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, errb.String())
	}
}

// TestEnvironmentSetsPodFlags sets the pod flags as a Pod spec does, the pod
// name from the Downward API: their values reach validation.
func TestEnvironmentSetsPodFlags(t *testing.T) {
	kc := kubeconfig(t, "https://127.0.0.1:1")
	env := map[string]string{
		"ELECTOR_KUBECONFIG":    kc,
		"ELECTOR_ELECTION":      "example",
		"ELECTOR_POD_NAME":      "Pod_A",
		"ELECTOR_POD_LABEL_KEY": "Bad Key",
		"ELECTOR_EVENTS":        "false",
	}
	var out, errb bytes.Buffer
	code := runWithEnv(context.Background(), nil, func(k string) string { return env[k] }, &out, &errb)
	if code != exitUsage {
		t.Fatalf("exit code %d, want %d", code, exitUsage)
	}
	for _, want := range []string{`pod name "Pod_A" is not a valid Pod name`, `pod label key "Bad Key" is not a valid label key`} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(context.Background(), "-version")
	if code != exitOK || !strings.HasPrefix(out, "k8s-elector ") || !strings.Contains(out, "go1.") {
		t.Fatalf("-version: exit %d, output %q", code, out)
	}
}
