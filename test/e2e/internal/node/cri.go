package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// removePods stops and removes every container and Pod sandbox through
// containerd's CRI plugin, as the kubelet would: their processes are
// killed, their network is torn down by the CNI plugins (which returns
// their addresses) and their mounts are removed. Run after the kubelet has
// stopped. A container the kubelet was starting as it stopped cannot be
// removed until the start is over: it tries again for up to 30s.
func (c *Cluster) removePods() error {
	conn, err := grpc.NewClient("unix://"+c.containerdSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	deadline := time.Now().Add(30 * time.Second)
	for {
		left, err := removePodsOnce(ctx, rt)
		if err == nil && left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("%d Pod sandboxes left", left)
			}
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// removePodsOnce tries once, and returns how many sandboxes were there.
func removePodsOnce(ctx context.Context, rt runtimeapi.RuntimeServiceClient) (int, error) {
	var errs []error
	containers, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return 0, fmt.Errorf("listing containers: %w", err)
	}
	for _, ctr := range containers.Containers {
		if _, err := rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: ctr.Id, Timeout: 0}); err != nil {
			errs = append(errs, fmt.Errorf("stopping container %s: %w", ctr.Metadata.GetName(), err))
		}
		if _, err := rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: ctr.Id}); err != nil {
			errs = append(errs, fmt.Errorf("removing container %s: %w", ctr.Metadata.GetName(), err))
		}
	}
	pods, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return 0, fmt.Errorf("listing Pod sandboxes: %w", err)
	}
	for _, p := range pods.Items {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			errs = append(errs, fmt.Errorf("stopping sandbox of %s/%s: %w", p.Metadata.GetNamespace(), p.Metadata.GetName(), err))
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			errs = append(errs, fmt.Errorf("removing sandbox of %s/%s: %w", p.Metadata.GetNamespace(), p.Metadata.GetName(), err))
		}
	}
	return len(pods.Items), errors.Join(errs...)
}
