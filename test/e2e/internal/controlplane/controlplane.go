// Package controlplane starts a real kube-apiserver and etcd on loopback for
// the end-to-end suite and the demo. It builds the pinned binaries with
// hack/controlplane-bins.sh when they are not cached, and uses envtest for
// certificates, ports and client credentials.
package controlplane

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// BinDirEnv names the environment variable that points at a directory
// holding kube-apiserver and etcd, to use instead of the pinned build.
const BinDirEnv = "CONTROLPLANE_BIN_DIR"

// ControlPlane is a running kube-apiserver and etcd.
type ControlPlane struct {
	env *envtest.Environment
	dir string

	// Admin is a client config with full access (group system:masters).
	Admin *rest.Config
	// AdminKubeconfig is the path of a kubeconfig file for Admin.
	AdminKubeconfig string
}

// RepoRoot returns the root of the k8s-elector repository.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..")
}

// BinDir returns the directory holding kube-apiserver and etcd: $BinDirEnv if
// set, else the pinned build, which it builds first if it is not cached
// (several minutes on 2 cores, with progress on stderr).
func BinDir() (string, error) {
	if dir := os.Getenv(BinDirEnv); dir != "" {
		return dir, nil
	}
	script := filepath.Join(RepoRoot(), "hack", "controlplane-bins.sh")
	cmd := exec.Command(script)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("building the control plane with %s: %w", script, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Start starts etcd and kube-apiserver with RBAC authorization, and writes
// an admin kubeconfig into a temporary directory that Stop removes. The
// caller must call Stop, also when its tests fail.
func Start() (*ControlPlane, error) { return StartWith(nil) }

// StartWith is Start with more kube-apiserver flags, such as feature gates:
// name to value, without the leading dashes.
func StartWith(apiServerFlags map[string]string) (*ControlPlane, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			return nil, fmt.Errorf("control plane binary missing: %w (run hack/controlplane-bins.sh, or set %s)", err, BinDirEnv)
		}
	}
	dir, err := os.MkdirTemp("", "k8s-elector-controlplane-")
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    bin,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	// Directories of our own, so that a restart keeps etcd's data and the
	// API server's certificates, port and users.
	etcdDir, certDir := filepath.Join(dir, "etcd"), filepath.Join(dir, "apiserver")
	for _, d := range []string{etcdDir, certDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	env.ControlPlane.Etcd = &envtest.Etcd{DataDir: etcdDir}
	api := env.ControlPlane.GetAPIServer()
	api.CertDir = certDir
	// There is no node or Service network here: advertise loopback and do
	// not reconcile the kubernetes Service's endpoints.
	api.Configure().
		Set("advertise-address", "127.0.0.1").
		Set("endpoint-reconciler-type", "none").
		Set("authorization-mode", "RBAC")
	for name, value := range apiServerFlags {
		api.Configure().Set(name, value)
	}
	if _, err := env.Start(); err != nil {
		_ = env.Stop()
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("starting kube-apiserver and etcd: %w", err)
	}
	c := &ControlPlane{env: env, dir: dir}
	admin, err := env.AddUser(envtest.User{Name: "k8s-elector-admin", Groups: []string{"system:masters"}}, nil)
	if err == nil {
		c.Admin = admin.Config()
		c.AdminKubeconfig, err = c.WriteKubeconfig("admin", c.Admin)
	}
	if err != nil {
		_ = c.Stop()
		return nil, err
	}
	return c, nil
}

// Stop stops kube-apiserver and etcd and removes their data and credentials.
func (c *ControlPlane) Stop() error {
	return errors.Join(c.env.Stop(), os.RemoveAll(c.dir))
}

// RestartEtcd stops etcd, waits down, and starts it again on the same
// client port with the same data.
func (c *ControlPlane) RestartEtcd(down time.Duration) error {
	etcd := c.env.ControlPlane.Etcd
	if err := etcd.Stop(); err != nil {
		return fmt.Errorf("stopping etcd: %w", err)
	}
	time.Sleep(down)
	if err := etcd.Start(); err != nil {
		return fmt.Errorf("starting etcd again: %w", err)
	}
	return nil
}

// APIServerPID returns the process ID of the running kube-apiserver: the
// child of this process that runs its binary on its secure port. It changes
// only if the API server is started again.
func (c *ControlPlane) APIServerPID() (int, error) {
	api := c.env.ControlPlane.APIServer
	return childPID(api.Path, "--secure-port="+api.SecureServing.Port)
}

// EtcdPID returns the process ID of the running etcd: the child of this
// process that runs its binary on its data directory. RestartEtcd changes it.
func (c *ControlPlane) EtcdPID() (int, error) {
	etcd := c.env.ControlPlane.Etcd
	return childPID(etcd.Path, "--data-dir="+etcd.DataDir)
}

// childPID returns the process ID of the one child of this process that runs
// the binary at path with arg among its arguments, from /proc.
func childPID(path, arg string) (int, error) {
	want, err := filepath.EvalSymlinks(path)
	if err != nil {
		return 0, fmt.Errorf("finding the process of %s: %w", path, err)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("finding the process of %s: %w", path, err)
	}
	var found []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || parentPID(pid) != os.Getpid() {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || exe != want {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && slices.Contains(strings.Split(string(cmdline), "\x00"), arg) {
			found = append(found, pid)
		}
	}
	if len(found) != 1 {
		return 0, fmt.Errorf("finding the process of %s with %s: %d children of process %d run it, want 1", want, arg, len(found), os.Getpid())
	}
	return found[0], nil
}

// parentPID returns the parent of pid from /proc/<pid>/stat, or -1 if it
// cannot be read (the process exited meanwhile). The fields after the
// command name, which is in parentheses and may hold spaces, start with the
// state and the parent.
func parentPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return -1
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return -1
	}
	return ppid
}

// AdminClient returns a clientset for Admin.
func (c *ControlPlane) AdminClient() (kubernetes.Interface, error) {
	return kubernetes.NewForConfig(c.Admin)
}

// User returns the kubeconfig path and client config of a user that
// authenticates with a client certificate and has only the permissions RBAC
// grants it.
func (c *ControlPlane) User(name string, groups ...string) (string, *rest.Config, error) {
	u, err := c.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return "", nil, fmt.Errorf("adding user %s: %w", name, err)
	}
	path, err := c.WriteKubeconfig(name, u.Config())
	return path, u.Config(), err
}

// WriteKubeconfig writes cfg as a kubeconfig file named after name in the
// control plane's directory and returns its path.
func (c *ControlPlane) WriteKubeconfig(name string, cfg *rest.Config) (string, error) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["local"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData,
		ClientKeyData:         cfg.KeyData,
		Token:                 cfg.BearerToken,
	}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: "local", AuthInfo: name}
	kc.CurrentContext = name
	path := filepath.Join(c.dir, name+".kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return "", fmt.Errorf("writing kubeconfig for %s: %w", name, err)
	}
	return path, nil
}
