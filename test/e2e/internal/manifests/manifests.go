// Package manifests builds the kustomizations in deploy/ the way
// `kubectl apply -k` does and applies them to a cluster, so that a broken
// manifest fails the end-to-end suite.
package manifests

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Build runs kustomize on dir and returns its objects, moved into namespace:
// namespaced objects, and the ServiceAccount subjects of RoleBindings and
// FlowSchemas, as an overlay that sets `namespace:` would.
func Build(dir, namespace string) ([]*unstructured.Unstructured, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range res.Resources() {
		m, err := r.Map()
		if err != nil {
			return nil, err
		}
		u := &unstructured.Unstructured{Object: m}
		switch u.GetKind() {
		case "FlowSchema", "ClusterRole", "ClusterRoleBinding", "Namespace":
		default:
			u.SetNamespace(namespace)
		}
		if err := moveSubjects(u, namespace); err != nil {
			return nil, err
		}
		objs = append(objs, u)
	}
	return objs, nil
}

// moveSubjects sets the namespace of ServiceAccount subjects.
func moveSubjects(u *unstructured.Unstructured, namespace string) error {
	switch u.GetKind() {
	case "RoleBinding", "ClusterRoleBinding":
		subjects, _, err := unstructured.NestedSlice(u.Object, "subjects")
		if err != nil {
			return err
		}
		for _, s := range subjects {
			if s, ok := s.(map[string]any); ok && s["kind"] == "ServiceAccount" {
				s["namespace"] = namespace
			}
		}
		return unstructured.SetNestedSlice(u.Object, subjects, "subjects")
	case "FlowSchema":
		rules, _, err := unstructured.NestedSlice(u.Object, "spec", "rules")
		if err != nil {
			return err
		}
		for _, r := range rules {
			subjects, _ := r.(map[string]any)["subjects"].([]any)
			for _, s := range subjects {
				if sa, ok := s.(map[string]any)["serviceAccount"].(map[string]any); ok {
					sa["namespace"] = namespace
				}
			}
		}
		return unstructured.SetNestedSlice(u.Object, rules, "spec", "rules")
	}
	return nil
}

// Applier creates objects through the dynamic client.
type Applier struct {
	client dynamic.Interface
	mapper meta.RESTMapper
}

// NewApplier returns an Applier for the cluster of cfg.
func NewApplier(cfg *rest.Config) (*Applier, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Applier{client: client, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}, nil
}

// Create creates every object, or with dryRun only has the API server
// validate and admit them (`kubectl apply --dry-run=server`).
func (a *Applier) Create(ctx context.Context, objs []*unstructured.Unstructured, dryRun bool) error {
	opts := metav1.CreateOptions{FieldValidation: "Strict"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	for _, u := range objs {
		ri, err := a.resource(u)
		if err != nil {
			return err
		}
		if _, err := ri.Create(ctx, u, opts); err != nil {
			return fmt.Errorf("creating %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	return nil
}

// Apply applies every object server-side (`kubectl apply --server-side`),
// as field manager manager, and returns the objects as the API server
// stored them. A kind that a CustomResourceDefinition has just added is
// found only by an Applier made after the API server serves it.
func (a *Applier) Apply(ctx context.Context, objs []*unstructured.Unstructured, manager string) ([]*unstructured.Unstructured, error) {
	opts := metav1.ApplyOptions{FieldManager: manager, Force: true}
	var applied []*unstructured.Unstructured
	for _, u := range objs {
		ri, err := a.resource(u)
		if err != nil {
			return nil, err
		}
		got, err := ri.Apply(ctx, u.GetName(), u, opts)
		if err != nil {
			return nil, fmt.Errorf("applying %s %s: %w", u.GetKind(), u.GetName(), err)
		}
		applied = append(applied, got)
	}
	return applied, nil
}

// resource returns the client for u's kind, in u's namespace if the kind
// has namespaces.
func (a *Applier) resource(u *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := u.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", gvk.Kind, u.GetName(), err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return a.client.Resource(m.Resource).Namespace(u.GetNamespace()), nil
	}
	return a.client.Resource(m.Resource), nil
}

// Get reads u's object as the API server has it now.
func (a *Applier) Get(ctx context.Context, u *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	ri, err := a.resource(u)
	if err != nil {
		return nil, err
	}
	return ri.Get(ctx, u.GetName(), metav1.GetOptions{})
}
