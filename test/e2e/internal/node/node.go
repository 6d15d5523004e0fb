// Package node starts a one-node Kubernetes cluster for the node tests:
// etcd, kube-apiserver (with ServiceAccount admission and token signing),
// kube-controller-manager, kube-scheduler, containerd with a state, root,
// config and socket of its own, and a kubelet, all in a temporary
// directory; Pods get their network from the bridge CNI plugin. Stop stops
// every process it started, the Pods' containers among them, and undoes
// what it changed on the host.
//
// It needs root, the binaries of hack/controlplane-bins.sh and
// hack/node-bins.sh, and the packages of hack/install-node.sh (`make node`).
// One cluster runs on a machine at a time: Start waits for another to stop.
package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/k8s-elector/elector/test/e2e/internal/controlplane"
)

// BinDirEnv names the environment variable that points at a directory
// holding kubelet, kube-controller-manager and kube-scheduler, to use
// instead of the pinned build of hack/node-bins.sh.
const BinDirEnv = "NODE_BIN_DIR"

const (
	// NodeName is the one node's name.
	NodeName = "k8s-elector-node"
	// The Service network (the `kubernetes` Service takes its first
	// address) and the Pod network on the node's bridge.
	serviceCIDR   = "10.0.0.0/24"
	kubernetesSvc = "10.0.0.1"
	podCIDR       = "10.244.0.0/24"
	bridgeName    = "k8se-node0"
	cniBinDir     = "/usr/lib/cni"
	// containerLogLinks is where the kubelet links containers' logs.
	containerLogLinks = "/var/log/containers"
	// lockFile makes clusters on one machine take turns: they share the
	// bridge, the Pod network and the DNAT rule for the Service address.
	lockFile = "/tmp/k8s-elector-node.lock"
)

// Options configure Start.
type Options struct {
	// Images are imported from podman's store into containerd before the
	// kubelet starts, so that Pods run them without a registry.
	Images []string
	// Logf reports progress; nil discards it.
	Logf func(format string, args ...any)
}

// Cluster is a running one-node cluster.
type Cluster struct {
	dir  string
	logf func(format string, args ...any)
	lock *os.File

	// stopMu makes Stop run once, from the test's cleanup or from an
	// interrupt, whichever comes first.
	stopMu  sync.Mutex
	stopped bool
	// unwatch ends the interrupt watch.
	unwatch chan struct{}
	// The reaper cleans up if the test binary dies without Stop.
	reaper   *exec.Cmd
	reaperIn io.WriteCloser

	// NodeIP is the node's address: the host's first non-loopback IPv4.
	NodeIP string
	// Admin is a client config with full access (group system:masters).
	Admin *rest.Config
	// AdminKubeconfig is the path of a kubeconfig file for Admin.
	AdminKubeconfig string

	containerdSock string
	procs          []*process
	// undo holds what Stop undoes on the host besides stopping processes,
	// run in reverse order after containerd has stopped.
	undo []func() error
	// The kubelet and containerd, stopped first, in this order.
	kubelet, containerd *process
}

// process is one started binary, in a process group of its own, logging to
// a file in the cluster's directory.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// BinDir returns the directory holding kubelet, kube-controller-manager and
// kube-scheduler: $BinDirEnv if set, else the pinned build, which it builds
// first if it is not cached (several minutes on 2 cores).
func BinDir() (string, error) {
	script := filepath.Join(controlplane.RepoRoot(), "hack", "node-bins.sh")
	cmd := exec.Command(script)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("building the node binaries with %s: %w", script, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Preflight reports what the node needs from the machine and lacks, in one
// error that says how to get it, or nil.
func Preflight() error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (the kubelet and containerd need it)")
	}
	for _, tool := range []string{"containerd", "containerd-shim-runc-v2", "ctr", "runc", "iptables", "ip", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool+" on PATH")
		}
	}
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if _, err := os.Stat(filepath.Join(cniBinDir, p)); err != nil {
			missing = append(missing, "the CNI plugin "+filepath.Join(cniBinDir, p))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the node tests need %s: `make node` (hack/install-node.sh) installs them", strings.Join(missing, ", "))
	}
	return nil
}

// Start starts the cluster and waits until its node is Ready, with the
// images imported. The caller must call Stop, also when its tests fail. On
// error Start has already stopped everything it started.
func Start(opts Options) (_ *Cluster, err error) {
	if err := Preflight(); err != nil {
		return nil, err
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	cpBin, err := controlplane.BinDir()
	if err != nil {
		return nil, err
	}
	nodeBin, err := BinDir()
	if err != nil {
		return nil, err
	}
	for _, p := range []string{
		filepath.Join(cpBin, "etcd"), filepath.Join(cpBin, "kube-apiserver"),
		filepath.Join(nodeBin, "kubelet"), filepath.Join(nodeBin, "kube-controller-manager"), filepath.Join(nodeBin, "kube-scheduler"),
	} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("node binary missing: %w (run `make node`, or set %s and %s)", err, controlplane.BinDirEnv, BinDirEnv)
		}
	}
	nodeIP, err := hostIPv4()
	if err != nil {
		return nil, err
	}

	lock, err := takeLock(logf)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "k8se-node-")
	if err != nil {
		_ = lock.Close()
		return nil, err
	}
	c := &Cluster{dir: dir, logf: logf, lock: lock, NodeIP: nodeIP, unwatch: make(chan struct{})}
	if err := c.startReaper(); err != nil {
		_ = os.RemoveAll(dir)
		_ = lock.Close()
		return nil, err
	}
	c.stopOnInterrupt()
	defer func() {
		if err != nil {
			if stopErr := c.Stop(); stopErr != nil {
				err = errors.Join(err, fmt.Errorf("stopping what had started: %w", stopErr))
			}
		}
	}()
	begin := time.Now()
	if err := c.startControlPlane(cpBin, nodeBin); err != nil {
		return nil, err
	}
	logf("node: control plane up in %s", time.Since(begin).Round(time.Millisecond))
	if err := c.startContainerd(); err != nil {
		return nil, err
	}
	pause, err := buildPauseArchive(c.dir)
	if err != nil {
		return nil, err
	}
	if err := c.importArchive(pause); err != nil {
		return nil, err
	}
	for _, image := range opts.Images {
		if err := c.ImportPodmanImage(image); err != nil {
			return nil, err
		}
	}
	logf("node: containerd up, images imported, in %s", time.Since(begin).Round(time.Millisecond))
	if err := c.startKubelet(nodeBin); err != nil {
		return nil, err
	}
	logf("node: %s Ready at %s in %s", NodeName, nodeIP, time.Since(begin).Round(time.Millisecond))
	return c, nil
}

// stopOnInterrupt stops the cluster when the test binary is interrupted
// (SIGINT, SIGTERM), where no cleanup of the tests would run. The suite's
// own handler may exit the process before Stop is done; the processes'
// parent-death signal then ends the rest.
func (c *Cluster) stopOnInterrupt() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		defer signal.Stop(sigs)
		select {
		case sig := <-sigs:
			fmt.Fprintf(os.Stderr, "node: %v: stopping the one-node cluster\n", sig)
			if err := c.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "node: stopping:", err)
			}
		case <-c.unwatch:
		}
	}()
}

// Dir is the cluster's temporary directory, with the processes' logs
// (<name>.log).
func (c *Cluster) Dir() string { return c.dir }

// takeLock waits for any other cluster on the machine to stop.
func takeLock(logf func(string, ...any)) (*os.File, error) {
	f, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(20 * time.Minute)
	for waited := false; ; waited = true {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			_ = f.Close()
			return nil, fmt.Errorf("locking %s (another node cluster runs on this machine?): %w", lockFile, err)
		}
		if !waited {
			logf("node: waiting for another node cluster on this machine to stop (%s)", lockFile)
		}
		time.Sleep(time.Second)
	}
}

// hostIPv4 returns the first IPv4 address of an up, non-loopback interface
// that is not the node's bridge: the kubelet rejects a loopback node IP.
func hostIPv4() (string, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || ifc.Name == bridgeName ||
			strings.HasPrefix(ifc.Name, "veth") || strings.HasPrefix(ifc.Name, "cni") || strings.HasPrefix(ifc.Name, "podman") {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
				return ipn.IP.String(), nil
			}
		}
	}
	return "", errors.New("node: the host has no non-loopback IPv4 address for the node")
}

// freePort returns a TCP port that is free on host now.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start starts a binary in a process group of its own, logging to
// <dir>/<name>.log.
func (c *Cluster) start(name, bin string, args ...string) (*process, error) {
	logPath := filepath.Join(c.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Killed with the test binary if it dies without Stop (a test timeout
	// panics past every cleanup); containerd gets SIGTERM, its shutdown.
	sig := syscall.SIGKILL
	if name == "containerd" {
		sig = syscall.SIGTERM
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: sig}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	return p, nil
}

// stop sends SIGTERM to the process group, and SIGKILL after grace.
func (p *process) stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil // exited before: its exit status was reported then, if it mattered
	default:
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, pgid)
	}
}

// exited reports an error with the log's tail if p has exited.
func (p *process) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v\n%s", p.name, p.err, Tail(p.log, 30))
	default:
		return nil
	}
}

// Tail returns the last n lines of the file at path.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Log returns the last n lines of the log of the process called name
// (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
// containerd, kubelet).
func (c *Cluster) Log(name string, n int) string {
	return Tail(filepath.Join(c.dir, name+".log"), n)
}

// poll calls f every interval until it returns true or an error, any of
// procs exits, or timeout passes.
func poll(timeout time.Duration, what string, procs []*process, f func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		for _, p := range procs {
			if err := p.exited(); err != nil {
				return fmt.Errorf("waiting for %s: %w", what, err)
			}
		}
		ok, err := f()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not within %s (last error: %v)", what, timeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (c *Cluster) startControlPlane(cpBin, nodeBin string) error {
	pki := filepath.Join(c.dir, "pki")
	if err := os.Mkdir(pki, 0o700); err != nil {
		return err
	}
	ca, err := newCA()
	if err != nil {
		return err
	}
	caFile := filepath.Join(pki, "ca.crt")
	if err := os.WriteFile(caFile, ca.certPEM, 0o600); err != nil {
		return err
	}
	// The serving certificate is valid for every address a client uses:
	// the node IP (components, tests) and the Service address (Pods).
	servingCert, servingKey, err := ca.issue("kube-apiserver", nil, c.NodeIP, kubernetesSvc, "127.0.0.1", "localhost",
		"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")
	if err != nil {
		return err
	}
	certFile, keyFile, err := writePair(pki, "apiserver", servingCert, servingKey)
	if err != nil {
		return err
	}
	saKey, saPub, err := writeServiceAccountKey(pki)
	if err != nil {
		return err
	}

	// etcd on loopback, with ports of its own (not 2379/2380).
	clientPort, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	peerPort, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	etcd, err := c.start("etcd", filepath.Join(cpBin, "etcd"),
		"--name=node", "--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=node="+peerURL, "--unsafe-no-fsync")
	if err != nil {
		return err
	}

	// kube-apiserver on the node IP, where Pods reach it through the DNAT
	// rule below.
	apiPort, err := freePort(c.NodeIP)
	if err != nil {
		return err
	}
	api, err := c.start("kube-apiserver", filepath.Join(cpBin, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address="+c.NodeIP, "--advertise-address="+c.NodeIP, "--secure-port="+strconv.Itoa(apiPort),
		"--cert-dir="+filepath.Join(c.dir, "apiserver"),
		"--tls-cert-file="+certFile, "--tls-private-key-file="+keyFile, "--client-ca-file="+caFile,
		"--service-cluster-ip-range="+serviceCIDR,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+saPub, "--service-account-signing-key-file="+saKey,
		"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true", "--profiling=false")
	if err != nil {
		return err
	}

	adminCert, adminKey, err := ca.issue("k8s-elector-node-admin", []string{"system:masters"})
	if err != nil {
		return err
	}
	host := "https://" + net.JoinHostPort(c.NodeIP, strconv.Itoa(apiPort))
	c.Admin = &rest.Config{Host: host, TLSClientConfig: rest.TLSClientConfig{CAData: ca.certPEM, CertData: adminCert, KeyData: adminKey}}
	if c.AdminKubeconfig, err = c.writeKubeconfig("admin", c.Admin); err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(c.Admin)
	if err != nil {
		return err
	}
	err = poll(2*time.Minute, "kube-apiserver ready", []*process{etcd, api}, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", err
	})
	if err != nil {
		return err
	}

	// Pods reach the API server as in-cluster clients do, at the
	// `kubernetes` Service's address: with no kube-proxy, one DNAT rule.
	if err := c.addServiceDNAT(apiPort); err != nil {
		return err
	}

	kcmPort, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	kcm, err := c.start("kube-controller-manager", filepath.Join(nodeBin, "kube-controller-manager"),
		"--kubeconfig="+c.AdminKubeconfig,
		"--authentication-kubeconfig="+c.AdminKubeconfig, "--authorization-kubeconfig="+c.AdminKubeconfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(kcmPort),
		"--controllers="+strings.Join([]string{
			"deployment-controller", "replicaset-controller", "endpointslice-controller",
			"node-lifecycle-controller", "disruption-controller",
			"serviceaccount-controller", "serviceaccount-token-controller",
			"root-ca-certificate-publisher-controller", "pod-garbage-collector-controller",
			"namespace-controller",
		}, ","),
		"--service-account-private-key-file="+saKey, "--root-ca-file="+caFile,
		"--leader-elect=false", "--profiling=false")
	if err != nil {
		return err
	}
	schedPort, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	sched, err := c.start("kube-scheduler", filepath.Join(nodeBin, "kube-scheduler"),
		"--kubeconfig="+c.AdminKubeconfig,
		"--authentication-kubeconfig="+c.AdminKubeconfig, "--authorization-kubeconfig="+c.AdminKubeconfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(schedPort),
		"--leader-elect=false", "--profiling=false")
	if err != nil {
		return err
	}
	// The ServiceAccount controller makes "default" in every namespace:
	// wait for it, and for the kube-root-ca.crt ConfigMap that the
	// projected token volumes name.
	err = poll(time.Minute, "the controllers' default ServiceAccount and kube-root-ca.crt", []*process{etcd, api, kcm, sched}, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			return false, err
		}
		_, err := client.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil, err
	})
	if err != nil {
		return err
	}

	kubeletCert, kubeletKey, err := ca.issue("system:node:"+NodeName, []string{"system:nodes"})
	if err != nil {
		return err
	}
	_, err = c.writeKubeconfig("kubelet", &rest.Config{Host: host, TLSClientConfig: rest.TLSClientConfig{CAData: ca.certPEM, CertData: kubeletCert, KeyData: kubeletKey}})
	return err
}

// addServiceDNAT routes the `kubernetes` Service's address and port to the
// API server, for traffic from the Pods (PREROUTING) and the host (OUTPUT).
func (c *Cluster) addServiceDNAT(apiPort int) error {
	for _, chain := range []string{"PREROUTING", "OUTPUT"} {
		rule := []string{chain, "-d", kubernetesSvc + "/32", "-p", "tcp", "--dport", "443",
			"-m", "comment", "--comment", "k8s-elector node " + filepath.Base(c.dir),
			"-j", "DNAT", "--to-destination", net.JoinHostPort(c.NodeIP, strconv.Itoa(apiPort))}
		if out, err := exec.Command("iptables", append([]string{"-w", "-t", "nat", "-A"}, rule...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("iptables: adding the DNAT rule for %s: %v: %s", kubernetesSvc, err, out)
		}
		if err := c.reapUndo(append([]string{"iptables", "-w", "-t", "nat", "-D"}, rule...)...); err != nil {
			return err
		}
		c.undo = append(c.undo, func() error {
			if out, err := exec.Command("iptables", append([]string{"-w", "-t", "nat", "-D"}, rule...)...).CombinedOutput(); err != nil {
				return fmt.Errorf("iptables: removing the DNAT rule for %s: %v: %s", kubernetesSvc, err, out)
			}
			return nil
		})
	}
	return nil
}

func (c *Cluster) writeKubeconfig(name string, cfg *rest.Config) (string, error) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["node"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: "node", AuthInfo: name}
	kc.CurrentContext = name
	path := filepath.Join(c.dir, name+".kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return "", fmt.Errorf("writing kubeconfig for %s: %w", name, err)
	}
	return path, nil
}

// containerdConfig is containerd's configuration: everything under the
// cluster's directory, the CRI plugin with the local pause image, runc
// with cgroupfs, and the bridge network.
const containerdConfig = `version = 2
root = "{{dir}}/containerd/root"
state = "{{dir}}/containerd/state"
[grpc]
  address = "{{sock}}"
[ttrpc]
  address = "{{sock}}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{{dir}}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{{pause}}"
  # Lowering oom_score_adj is denied on these machines: without this runc
  # fails with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  enable_selinux = false
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "` + cniBinDir + `"
    conf_dir = "{{dir}}/cni"
`

// cniConfig is the Pods' network: a bridge with host-local addresses, the
// bridge being their gateway (to the Service address, which the DNAT rule
// sends on to the API server). No masquerading: Pods talk only to the node.
const cniConfig = `{
  "cniVersion": "0.4.0",
  "name": "k8s-elector-node",
  "plugins": [{
    "type": "bridge",
    "bridge": "` + bridgeName + `",
    "isGateway": true,
    "ipMasq": false,
    "hairpinMode": true,
    "ipam": {
      "type": "host-local",
      "ranges": [[{"subnet": "` + podCIDR + `"}]],
      "routes": [{"dst": "0.0.0.0/0"}],
      "dataDir": "{{dir}}/cni-ipam"
    }
  }]
}
`

func (c *Cluster) startContainerd() error {
	for _, d := range []string{"containerd", "cni", "cni-ipam"} {
		if err := os.MkdirAll(filepath.Join(c.dir, d), 0o700); err != nil {
			return err
		}
	}
	c.containerdSock = filepath.Join(c.dir, "containerd", "containerd.sock")
	r := strings.NewReplacer("{{dir}}", c.dir, "{{sock}}", c.containerdSock, "{{pause}}", PauseImage)
	conf := filepath.Join(c.dir, "containerd", "config.toml")
	if err := os.WriteFile(conf, []byte(r.Replace(containerdConfig)), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.dir, "cni", "10-bridge.conflist"), []byte(r.Replace(cniConfig)), 0o600); err != nil {
		return err
	}
	// The bridge plugin turns IP forwarding on: put back what was there.
	if before, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err == nil {
		if err := c.reapUndo("sh", "-c", "echo "+strings.TrimSpace(string(before))+" > /proc/sys/net/ipv4/ip_forward"); err != nil {
			return err
		}
		c.undo = append(c.undo, func() error {
			if now, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err == nil && !bytes.Equal(now, before) {
				return os.WriteFile("/proc/sys/net/ipv4/ip_forward", before, 0o644)
			}
			return nil
		})
	}
	// The kubelet links the containers' logs into /var/log/containers,
	// whatever its pod-logs directory, and containerd makes the cgroup
	// k8s.io in each hierarchy: remove the links into this cluster, and
	// what they made if it was not there before.
	_, err := os.Stat(containerLogLinks)
	madeLogLinks := errors.Is(err, os.ErrNotExist)
	if madeLogLinks {
		if err := c.reapUndo("rmdir", containerLogLinks); err != nil {
			return err
		}
	}
	c.undo = append(c.undo, func() error { return c.removeLogLinks(madeLogLinks) })
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range cgroups {
		cg := filepath.Join(h, "k8s.io")
		if _, err := os.Stat(cg); errors.Is(err, os.ErrNotExist) {
			if err := c.reapUndo("rmcgroup", cg); err != nil {
				return err
			}
			c.undo = append(c.undo, func() error { return removeCgroup(cg) })
		}
	}
	if err := c.reapUndo("ip", "link", "delete", bridgeName); err != nil {
		return err
	}
	c.undo = append(c.undo, func() error {
		if _, err := net.InterfaceByName(bridgeName); err != nil {
			return nil
		}
		if out, err := exec.Command("ip", "link", "delete", bridgeName).CombinedOutput(); err != nil {
			return fmt.Errorf("deleting the bridge %s: %v: %s", bridgeName, err, out)
		}
		return nil
	})
	p, err := c.start("containerd", "containerd", "--config", conf)
	if err != nil {
		return err
	}
	c.containerd = p
	return poll(time.Minute, "containerd's socket", []*process{p}, func() (bool, error) {
		out, err := exec.Command("ctr", "--address", c.containerdSock, "version").CombinedOutput()
		if err != nil {
			return false, fmt.Errorf("%v: %s", err, out)
		}
		return true, nil
	})
}

// kubeletConfig is the KubeletConfiguration. These machines have cgroup
// v1 (failCgroupV1: false) and no systemd: cgroupfs, no QoS cgroups, no
// node-allocatable enforcement; swap may be on.
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
address: {{ip}}
port: {{port}}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {{healthz}}
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
containerRuntimeEndpoint: unix://{{sock}}
podLogsDir: {{dir}}/pod-logs
volumePluginDir: {{dir}}/volume-plugins
registerNode: true
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
nodeStatusUpdateFrequency: 2s
syncFrequency: 5s
shutdownGracePeriod: 0s
`

func (c *Cluster) startKubelet(nodeBin string) error {
	port, err := freePort(c.NodeIP)
	if err != nil {
		return err
	}
	healthz, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	for _, d := range []string{"kubelet", "pod-logs", "volume-plugins"} {
		if err := os.MkdirAll(filepath.Join(c.dir, d), 0o700); err != nil {
			return err
		}
	}
	r := strings.NewReplacer("{{dir}}", c.dir, "{{sock}}", c.containerdSock, "{{ip}}", c.NodeIP,
		"{{port}}", strconv.Itoa(port), "{{healthz}}", strconv.Itoa(healthz))
	conf := filepath.Join(c.dir, "kubelet.yaml")
	if err := os.WriteFile(conf, []byte(r.Replace(kubeletConfig)), 0o600); err != nil {
		return err
	}
	p, err := c.start("kubelet", filepath.Join(nodeBin, "kubelet"),
		"--config="+conf, "--kubeconfig="+filepath.Join(c.dir, "kubelet.kubeconfig"),
		"--root-dir="+filepath.Join(c.dir, "kubelet"), "--cert-dir="+filepath.Join(c.dir, "kubelet", "pki"),
		"--hostname-override="+NodeName, "--node-ip="+c.NodeIP, "--v=2")
	if err != nil {
		return err
	}
	c.kubelet = p
	client, err := kubernetes.NewForConfig(c.Admin)
	if err != nil {
		return err
	}
	return poll(2*time.Minute, "node "+NodeName+" Ready", []*process{p, c.containerd}, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n, err := client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				if cond.Status != corev1.ConditionTrue {
					return false, fmt.Errorf("Ready=%s: %s", cond.Status, cond.Message)
				}
				// Until the node lifecycle controller removes the not-ready
				// taint, nothing is scheduled.
				for _, taint := range n.Spec.Taints {
					if taint.Effect == corev1.TaintEffectNoSchedule {
						return false, fmt.Errorf("taint %s", taint.Key)
					}
				}
				return true, nil
			}
		}
		return false, errors.New("no Ready condition yet")
	})
}

// Stop stops every process Start started: the kubelet, then every Pod's
// containers and sandboxes through the CRI (which also tears down their
// network), containerd and any shim left, then the scheduler, the
// controller manager, the API server and etcd. It unmounts what remains
// under the cluster's directory, removes the DNAT rule and the bridge, puts
// IP forwarding back, and removes the directory.
func (c *Cluster) Stop() error {
	if c == nil {
		return nil
	}
	c.stopMu.Lock()
	defer c.stopMu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	if c.unwatch != nil {
		close(c.unwatch)
	}
	var errs []error
	if c.kubelet != nil {
		errs = append(errs, c.kubelet.stop(15*time.Second))
	}
	if c.containerd != nil {
		if err := c.removePods(); err != nil {
			errs = append(errs, fmt.Errorf("removing the Pods' sandboxes: %w", err))
		}
		errs = append(errs, c.containerd.stop(15*time.Second))
		errs = append(errs, c.killShims())
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		if p := c.procs[i]; p != c.kubelet && p != c.containerd {
			errs = append(errs, p.stop(15*time.Second))
		}
	}
	errs = append(errs, c.unmountAll())
	for i := len(c.undo) - 1; i >= 0; i-- {
		errs = append(errs, c.undo[i]())
	}
	c.undo, c.procs = nil, nil
	if c.dir != "" {
		errs = append(errs, os.RemoveAll(c.dir))
	}
	errs = append(errs, c.stopReaper())
	if c.lock != nil {
		errs = append(errs, c.lock.Close())
		c.lock = nil
	}
	return errors.Join(errs...)
}

// removeCgroup removes the cgroup directory cg, which containerd made for
// this cluster, and those below it, deepest first. Any process still in
// them is this cluster's (a "runc init" whose start was cut short by the
// kubelet's stop): it is killed first, by PID.
func removeCgroup(cg string) error {
	var dirs []string
	err := filepath.WalkDir(cg, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := killCgroupProcs(dirs[i]); err != nil {
			errs = append(errs, err)
		}
		if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing the cgroup %s, which containerd made: %w", dirs[i], err))
		}
	}
	return errors.Join(errs...)
}

// killCgroupProcs kills the processes in the cgroup dir and waits until
// it is empty.
func killCgroupProcs(dir string) error {
	procs := func() []int {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		var pids []int
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return pids
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := procs()
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still in the cgroup %s", pids, dir)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// removeLogLinks removes the kubelet's links to this cluster's container
// logs, and their directory if made is set and it is empty.
func (c *Cluster) removeLogLinks(made bool) error {
	entries, err := os.ReadDir(containerLogLinks)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		path := filepath.Join(containerLogLinks, e.Name())
		if target, err := os.Readlink(path); err == nil && strings.HasPrefix(target, c.dir+"/") {
			errs = append(errs, os.Remove(path))
		}
	}
	if made {
		if err := os.Remove(containerLogLinks); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing %s, which the kubelet made: %w", containerLogLinks, err))
		}
	}
	return errors.Join(errs...)
}

// killShims kills any containerd-shim of this cluster's containerd that is
// still running (and so the containers it holds), by PID.
func (c *Cluster) killShims() error {
	var errs []error
	for _, pid := range c.shims() {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("killing shim %d: %w", pid, err))
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(c.shims()) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if left := c.shims(); len(left) > 0 {
		errs = append(errs, fmt.Errorf("containerd shims still running: %v", left))
	}
	return errors.Join(errs...)
}

// shims returns the PIDs of the shims started for this cluster's
// containerd: their command line names its socket.
func (c *Cluster) shims() []int {
	if c.containerdSock == "" {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) > 0 && strings.Contains(filepath.Base(args[0]), "containerd-shim") &&
			bytes.Contains(cmdline, []byte(c.containerdSock)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// unmountAll unmounts every mount under the cluster's directory (the
// kubelet's volumes, containerd's root filesystems and shm), deepest first.
func (c *Cluster) unmountAll() error {
	if c.dir == "" {
		return nil
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && (fields[4] == c.dir || strings.HasPrefix(fields[4], c.dir+"/")) {
			points = append(points, fields[4])
		}
	}
	var errs []error
	for i := len(points) - 1; i >= 0; i-- {
		if err := syscall.Unmount(points[i], syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", points[i], err))
		}
	}
	return errors.Join(errs...)
}
