package node

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// PauseImage is the Pod sandbox image, and the image deploy/example's
// application container names: built here from ./pause, never pulled.
const PauseImage = "registry.k8s.io/pause:3.10"

// buildPauseArchive builds ./pause as a static binary and writes an OCI
// image archive of it, named PauseImage, that runs as UID 65535 (so that
// runAsNonRoot admits it), to dir/pause.tar.
func buildPauseArchive(dir string) (string, error) {
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(dir, "pause")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./pause")
	cmd.Dir = filepath.Dir(file)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the pause binary: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	// The one layer: /pause.
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	epoch := time.Unix(0, 0)
	if err := tw.WriteHeader(&tar.Header{Name: "pause", Mode: 0o755, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
		return "", err
	}
	if _, err := tw.Write(data); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	type desc struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int               `json:"size"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	blobs := map[string][]byte{}
	add := func(mediaType string, b []byte) desc {
		d := fmt.Sprintf("sha256:%x", sha256.Sum256(b))
		blobs[d] = b
		return desc{MediaType: mediaType, Digest: d, Size: len(b)}
	}
	layerDesc := add("application/vnd.oci.image.layer.v1.tar", layer.Bytes())
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       map[string]any{"Entrypoint": []string{"/pause"}, "User": "65535:65535"},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{layerDesc.Digest}},
	})
	if err != nil {
		return "", err
	}
	configDesc := add("application/vnd.oci.image.config.v1+json", config)
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        configDesc,
		"layers":        []desc{layerDesc},
	})
	if err != nil {
		return "", err
	}
	manifestDesc := add("application/vnd.oci.image.manifest.v1+json", manifest)
	manifestDesc.Annotations = map[string]string{
		"io.containerd.image.name":          PauseImage,
		"org.opencontainers.image.ref.name": PauseImage[strings.LastIndex(PauseImage, ":")+1:],
	}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     []desc{manifestDesc},
	})
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "pause.tar")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	aw := tar.NewWriter(f)
	write := func(name string, b []byte) error {
		if err := aw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := aw.Write(b)
		return err
	}
	if err := write("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return "", err
	}
	if err := write("index.json", index); err != nil {
		return "", err
	}
	for d, b := range blobs {
		if err := write("blobs/sha256/"+strings.TrimPrefix(d, "sha256:"), b); err != nil {
			return "", err
		}
	}
	if err := aw.Close(); err != nil {
		return "", err
	}
	return path, f.Close()
}

// importArchive imports an image archive (OCI or docker-archive) into
// containerd's k8s.io namespace, where the CRI plugin finds it.
func (c *Cluster) importArchive(path string) error {
	out, err := exec.Command("ctr", "--address", c.containerdSock, "-n", "k8s.io",
		"images", "import", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr images import %s: %v\n%s", filepath.Base(path), err, out)
	}
	return nil
}

// ImportPodmanImage saves image from podman's store (where `make image`
// builds it) and imports it into the node's containerd, under the same
// name, so that Pods run it without a registry.
func (c *Cluster) ImportPodmanImage(image string) error {
	if _, err := exec.LookPath("podman"); err != nil {
		return fmt.Errorf("podman is not on PATH (%v): `make image` builds %s with it", err, image)
	}
	path := filepath.Join(c.dir, "image.tar")
	defer os.Remove(path)
	cmd := exec.Command("podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs",
		"save", "--format", "docker-archive", "-o", path, image)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("podman save %s (does `make image` build it?): %v\n%s", image, err, out)
	}
	return c.importArchive(path)
}
