package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	elector "github.com/k8s-elector/elector"
)

// kubeconfigWith is a kubeconfig with one cluster "c", one user "u" and a
// current context "c" joining them; cluster and user are the bodies of their
// flow mappings, such as `server: "https://127.0.0.1:1"`.
func kubeconfigWith(cluster, user string) string {
	return `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {` + cluster + `}
users:
- name: u
  user: {` + user + `}
contexts:
- name: c
  context: {cluster: c, user: u}
current-context: c
`
}

const goodServer = `server: "https://127.0.0.1:1"`

// b64 is s as a kubeconfig *-data field holds it.
func b64(s []byte) string { return base64.StdEncoding.EncodeToString(s) }

// certAndKey returns a self-signed client certificate and its key, in PEM.
func certAndKey(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "k8s-elector-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// brokenKubeconfig is a kubeconfig that the CLI must reject, with exit code
// 2 and one line, before anything talks to a cluster.
type brokenKubeconfig struct {
	name string
	// file is the kubeconfig's contents, written to dir/kubeconfig.
	file string
	// path, when set, replaces the kubeconfig: it returns the -kubeconfig
	// value for a case that is not about the contents.
	path func(t *testing.T, dir string) string
	// unreadable marks the case whose file is chmod 000: it runs without
	// the capabilities that let root read it anyway.
	unreadable bool
	// want is the problem, as the stderr line states it; {path} stands
	// for the -kubeconfig value.
	want string
}

// brokenKubeconfigs returns the table; files that the kubeconfigs point to
// live, or are missing, in dir.
func brokenKubeconfigs(t testing.TB, dir string) []brokenKubeconfig {
	cert, _ := certAndKey(t)
	_, otherKey := certAndKey(t)
	missing := filepath.Join(dir, "missing")
	return []brokenKubeconfig{
		{
			name: "garbage YAML",
			file: "\x00\x01not: [yaml",
			want: "cannot load -kubeconfig={path}: yaml: control characters are not allowed",
		},
		{
			name: "YAML that is not a mapping",
			file: "- just\n- a list\n",
			want: "not a kubeconfig: want a YAML mapping with apiVersion: v1 and kind: Config",
		},
		{
			name: "kind that is not Config",
			file: "apiVersion: v1\nkind: Pod\n",
			want: "not a kubeconfig: want a YAML mapping with apiVersion: v1 and kind: Config",
		},
		{
			name: "field of the wrong type",
			file: "apiVersion: v1\nkind: Config\nclusters: {c: {server: x}}\n",
			want: "json: cannot unmarshal object into Go struct field Config.clusters of type []v1.NamedCluster",
		},
		{
			name: "empty file",
			file: "",
			want: "holds no clusters, users or contexts",
		},
		{
			name: "only apiVersion and kind",
			file: "apiVersion: v1\nkind: Config\n",
			want: "holds no clusters, users or contexts",
		},
		{
			name: "no current-context",
			file: strings.Replace(kubeconfigWith(goodServer, "token: t"), "current-context: c\n", "", 1),
			want: `current-context is not set: want one of the contexts ("c")`,
		},
		{
			name: "current-context names no context",
			file: strings.Replace(kubeconfigWith(goodServer, "token: t"), "current-context: c", "current-context: prod", 1),
			want: `current-context "prod" is not among the contexts ("c")`,
		},
		{
			name: "context names a missing cluster",
			file: strings.Replace(kubeconfigWith(goodServer, "token: t"), "{cluster: c,", "{cluster: prod,", 1),
			want: `context "c" names cluster "prod", which is not among the clusters ("c")`,
		},
		{
			name: "context names a missing user",
			file: strings.Replace(kubeconfigWith(goodServer, "token: t"), "user: u}", "user: admin}", 1),
			want: `context "c" names user "admin", which is not among the users ("u")`,
		},
		{
			// Two problems, both in the one context: each is reported, in
			// the one line.
			name: "context names a missing cluster and a missing user",
			file: strings.Replace(kubeconfigWith(goodServer, "token: t"), "{cluster: c, user: u}", "{cluster: prod, user: admin}", 1),
			want: `context "c" names cluster "prod", which is not among the clusters ("c"); context "c" names user "admin", which is not among the users ("u")`,
		},
		{
			name: "cluster without a server",
			file: kubeconfigWith(`insecure-skip-tls-verify: true`, "token: t"),
			want: `cluster "c": server is not set: want https://HOST:PORT`,
		},
		{
			name: "server URL without a scheme",
			file: kubeconfigWith(`server: "127.0.0.1:6443"`, "token: t"),
			want: `cluster "c": server "127.0.0.1:6443" has no scheme: want https://127.0.0.1:6443`,
		},
		{
			name: "server URL that does not parse",
			file: kubeconfigWith(`server: "https://[::1:6443"`, "token: t"),
			want: `cluster "c": server "https://[::1:6443" is not a URL: `,
		},
		{
			name: "server URL with an unknown scheme",
			file: kubeconfigWith(`server: "ftp://127.0.0.1:6443"`, "token: t"),
			want: `cluster "c": server "ftp://127.0.0.1:6443" has scheme "ftp": want https`,
		},
		{
			name: "server URL without a host",
			file: kubeconfigWith(`server: "https://"`, "token: t"),
			want: `cluster "c": server "https://" has no host: want https://HOST:PORT`,
		},
		{
			name: "certificate-authority-data that is not PEM",
			file: kubeconfigWith(goodServer+`, certificate-authority-data: `+b64([]byte("not a certificate")), "token: t"),
			want: `cluster "c": certificate-authority-data: `,
		},
		{
			name: "certificate-authority file that does not exist",
			file: kubeconfigWith(goodServer+`, certificate-authority: "`+filepath.Join(missing, "ca.crt")+`"`, "token: t"),
			want: `cluster "c": certificate-authority: open ` + filepath.Join(missing, "ca.crt") + ": no such file or directory",
		},
		{
			name: "client certificate and key that are not PEM",
			file: kubeconfigWith(goodServer, `client-certificate-data: `+b64([]byte("not a certificate"))+`, client-key-data: `+b64([]byte("not a key"))),
			want: `user "u": client-certificate-data and client-key-data: tls: failed to find any PEM data in certificate input`,
		},
		{
			name: "client certificate and key that do not match",
			file: kubeconfigWith(goodServer, `client-certificate-data: `+b64(cert)+`, client-key-data: `+b64(otherKey)),
			want: `user "u": client-certificate-data and client-key-data: tls: private key does not match public key`,
		},
		{
			name: "client certificate without a key",
			file: kubeconfigWith(goodServer, `client-certificate-data: `+b64(cert)),
			want: "invalid configuration: client-key-data or client-key must be specified for u to use the clientCert authentication method.",
		},
		{
			name: "client key file that does not exist",
			file: kubeconfigWith(goodServer, `client-certificate-data: `+b64(cert)+`, client-key: "`+filepath.Join(missing, "client.key")+`"`),
			want: `user "u": client-certificate-data and client-key: open ` + filepath.Join(missing, "client.key") + ": no such file or directory",
		},
		{
			name: "exec plugin whose command is not found",
			file: kubeconfigWith(goodServer, `exec: {apiVersion: client.authentication.k8s.io/v1, command: k8s-elector-no-such-plugin, interactiveMode: Never}`),
			want: `user "u": exec command "k8s-elector-no-such-plugin": executable file not found in $PATH`,
		},
		{
			name: "token file that does not exist",
			file: kubeconfigWith(goodServer, `tokenFile: "`+filepath.Join(missing, "token")+`"`),
			want: `user "u": tokenFile: open ` + filepath.Join(missing, "token") + ": no such file or directory",
		},
		{
			name: "auth provider that is not compiled in",
			file: kubeconfigWith(goodServer, `auth-provider: {name: gcp}`),
			want: `cannot use -kubeconfig={path}: no Auth Provider found for name "gcp"`,
		},
		{
			name: "directory",
			path: func(t *testing.T, dir string) string { return dir },
			want: "cannot load -kubeconfig={path}: read {path}: is a directory",
		},
		{
			name: "file that does not exist",
			path: func(t *testing.T, dir string) string { return filepath.Join(dir, "missing", "kubeconfig") },
			want: "cannot load -kubeconfig={path}: open {path}: no such file or directory",
		},
		{
			name: "unreadable file",
			path: func(t *testing.T, dir string) string {
				path := filepath.Join(dir, "kubeconfig")
				if err := os.WriteFile(path, []byte(kubeconfigWith(goodServer, "token: t")), 0o000); err != nil {
					t.Fatal(err)
				}
				return path
			},
			unreadable: true,
			want:       "cannot load -kubeconfig={path}: open {path}: permission denied",
		},
	}
}

// writeKubeconfig writes contents to dir/kubeconfig and returns its path.
func writeKubeconfig(t testing.TB, dir, contents string) string {
	t.Helper()
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, []byte(contents), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBrokenKubeconfig runs the CLI on kubeconfigs that cannot work: each
// must end it with exit code 2 and one line naming the file and the problem,
// before it talks to a cluster.
func TestBrokenKubeconfig(t *testing.T) {
	for _, tc := range brokenKubeconfigs(t, t.TempDir()) {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var path string
			if tc.path != nil {
				path = tc.path(t, dir)
			} else {
				path = writeKubeconfig(t, dir, tc.file)
			}
			var code int
			var out, errOut string
			runIt := func() {
				// A CLI that accepts the kubeconfig runs the election until
				// cancelled: bound it, so that the failure is reported.
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				code, out, errOut = runCLI(ctx, "-kubeconfig="+path, "-election=example")
			}
			if tc.unreadable {
				withoutFileAccessOverride(t, func() {
					if _, err := os.ReadFile(path); err == nil {
						t.Skipf("cannot make %s unreadable: a chmod 000 file stays readable to this process (uid %d) even without CAP_DAC_OVERRIDE", path, os.Geteuid())
					}
					runIt()
				})
			} else {
				runIt()
			}

			if code != exitUsage {
				t.Errorf("got exit code %d, want %d", code, exitUsage)
			}
			if out != "" {
				t.Errorf("got stdout %q, want nothing", out)
			}
			for _, bad := range []string{"panic", "goroutine "} {
				if strings.Contains(errOut, bad) {
					t.Errorf("got %q in stderr, want none:\n%s", bad, errOut)
				}
			}
			lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
			if len(lines) != 2 || lines[1] != "Run k8s-elector -h for usage." {
				t.Fatalf("got stderr\n%s\nwant one k8s-elector: line and the usage hint", errOut)
			}
			t.Logf("stderr: %s", lines[0])
			first := lines[0]
			if !strings.HasPrefix(first, "k8s-elector: ") {
				t.Errorf("got %q, want a line that starts with \"k8s-elector: \"", first)
			}
			if !strings.Contains(first, "-kubeconfig="+path+":") {
				t.Errorf("got %q, want it to name -kubeconfig=%s", first, path)
			}
			if want := strings.ReplaceAll(tc.want, "{path}", path); !strings.Contains(first, want) {
				t.Errorf("got %q, want it to contain %q", first, want)
			}
		})
	}
}

// usableKubeconfig is a kubeconfig that the config path must accept.
type usableKubeconfig struct {
	name  string
	file  string
	files map[string][]byte // written next to the kubeconfig
}

func usableKubeconfigs(t testing.TB) []usableKubeconfig {
	cert, key := certAndKey(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []usableKubeconfig{
		{"token", kubeconfigWith(goodServer, "token: t"), nil},
		{"token file, relative", kubeconfigWith(goodServer, "tokenFile: token"), map[string][]byte{"token": []byte("t")}},
		{"no user", strings.Replace(kubeconfigWith(goodServer, "token: t"), "user: u}", "}", 1), nil},
		{"client certificate data", kubeconfigWith(goodServer, `client-certificate-data: `+b64(cert)+`, client-key-data: `+b64(key)), nil},
		{"client certificate files, relative", kubeconfigWith(goodServer, `client-certificate: tls.crt, client-key: tls.key`),
			map[string][]byte{"tls.crt": cert, "tls.key": key}},
		{"certificate-authority-data", kubeconfigWith(goodServer+`, certificate-authority-data: `+b64(cert), "token: t"), nil},
		{"certificate-authority file", kubeconfigWith(goodServer+`, certificate-authority: ca.crt`, "token: t"), map[string][]byte{"ca.crt": cert}},
		{"exec plugin by absolute path", kubeconfigWith(goodServer, `exec: {apiVersion: client.authentication.k8s.io/v1, command: "`+self+`", interactiveMode: Never}`), nil},
		{"plain HTTP", kubeconfigWith(`server: "http://127.0.0.1:8001"`, ""), nil},
		{"server with a path", kubeconfigWith(`server: "https://127.0.0.1:1/k8s/clusters/c"`, "token: t"), nil},
	}
}

// TestUsableKubeconfig runs the config path on kubeconfigs that must work, so
// that the checks for broken ones reject nothing that client-go accepts, and
// the library builds a client from the result. Relative paths are relative
// to the kubeconfig's directory, as kubectl has them.
func TestUsableKubeconfig(t *testing.T) {
	for _, tc := range usableKubeconfigs(t) {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			path := writeKubeconfig(t, dir, tc.file)
			cfg, err := restConfig(path)
			if err != nil {
				t.Fatalf("got %v, want no error", err)
			}
			if _, err := elector.New("example", elector.WithRESTConfig(cfg)); err != nil {
				t.Errorf("elector.New: got %v, want no error", err)
			}
		})
	}
}

// FuzzKubeconfig runs the config path on arbitrary files: it must not panic,
// an error must be one line that names the file, and a config it accepts must
// be one that elector.New can build a client from, so that no problem
// reaches the user without the file's name.
func FuzzKubeconfig(f *testing.F) {
	for _, tc := range brokenKubeconfigs(f, f.TempDir()) {
		if tc.path == nil {
			f.Add([]byte(tc.file))
		}
	}
	for _, tc := range usableKubeconfigs(f) {
		if tc.files == nil {
			f.Add([]byte(tc.file))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "kubeconfig")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := restConfig(path)
		if err != nil {
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("got an error of several lines, want one: %q", msg)
			}
			if !strings.Contains(msg, "-kubeconfig="+path+": ") {
				t.Fatalf("got %q, want an error that names -kubeconfig=%s", msg, path)
			}
			return
		}
		if _, err := elector.New("example", elector.WithRESTConfig(cfg)); err != nil {
			t.Fatalf("restConfig accepted a config that elector.New rejects: got %q, want no error", err)
		}
	})
}
