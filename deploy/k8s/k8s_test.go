// Package k8s holds the Kubernetes manifests (base/, overlays/production/)
// and the test that renders them with kustomize and decodes every object
// strictly into the Kubernetes API types: a misspelt or misplaced field, a
// wrong kind or a broken reference fails it.
package k8s

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// kinds maps apiVersion/kind to a new typed object to decode into.
var kinds = map[string]func() any{
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                              func() any { return &corev1.Secret{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"v1/Namespace":                           func() any { return &corev1.Namespace{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"batch/v1/Job":                           func() any { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"networking.k8s.io/v1/NetworkPolicy":     func() any { return &networkingv1.NetworkPolicy{} },
}

// secretFiles are the files overlays/production's secretGenerator reads
// (git-ignored; an operator creates them): placeholders here.
var secretFiles = []string{
	"nats-gateway-password", "nats-identity-password", "nats-session-password", "nats-events-password",
	"database-url", "miniprogram-secret", "web-secret", "jwt-ed25519.pem", "webhooks.yaml",
}

type object struct {
	key  string // kind/name
	kind string
	obj  any
}

// render builds dir (relative to this directory) with kustomize from an
// in-memory copy of this tree plus the placeholder secret files, and
// decodes each object strictly.
func render(t *testing.T, dir string) []object {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile("/k8s/"+filepath.ToSlash(p), b)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range secretFiles {
		if err := mem.WriteFile("/k8s/overlays/production/secrets/"+f, []byte("placeholder-"+f)); err != nil {
			t.Fatal(err)
		}
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(mem, "/k8s/"+dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []object
	for _, r := range res.Resources() {
		raw, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		kind := r.GetApiVersion() + "/" + r.GetKind()
		newObj, ok := kinds[kind]
		if !ok {
			t.Errorf("%s %s: a kind this test does not know; add it to kinds", kind, r.GetName())
			continue
		}
		obj := newObj()
		// Strict: an unknown or duplicated field is an error, not dropped.
		if err := yaml.UnmarshalStrict(raw, obj); err != nil {
			t.Errorf("%s %s does not decode strictly: %v\n%s", kind, r.GetName(), err, raw)
			continue
		}
		out = append(out, object{key: r.GetKind() + "/" + r.GetName(), kind: r.GetKind(), obj: obj})
	}
	return out
}

func TestStrictDecodeRejectsATypo(t *testing.T) {
	// The check the tests rely on: a misspelt field fails.
	bad := []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 2\n")
	if err := yaml.UnmarshalStrict(bad, &appsv1.Deployment{}); err == nil {
		t.Fatal("strict decode accepted spec.replica")
	}
}

func TestBaseRenders(t *testing.T) {
	if objs := render(t, "base"); len(objs) == 0 {
		t.Fatal("base renders nothing")
	}
}

func TestProduction(t *testing.T) {
	objs := render(t, "overlays/production")
	byKey := map[string]any{}
	secrets := map[string]*corev1.Secret{}
	for _, o := range objs {
		byKey[o.key] = o.obj
		if s, ok := o.obj.(*corev1.Secret); ok {
			secrets[s.Name] = s
		}
	}
	for _, want := range []string{
		"Namespace/wxlogin", "ConfigMap/wxlogin-config",
		"Deployment/gateway", "Deployment/identity", "Deployment/session", "Deployment/webhooks", "Job/wxlogin-migrate", "Service/gateway",
		"PodDisruptionBudget/gateway", "PodDisruptionBudget/identity", "PodDisruptionBudget/session", "PodDisruptionBudget/webhooks",
		"HorizontalPodAutoscaler/gateway", "HorizontalPodAutoscaler/identity",
		"NetworkPolicy/default-deny", "NetworkPolicy/gateway-ingress",
		"Secret/wxlogin-nats-users",
	} {
		if _, ok := byKey[want]; !ok && !strings.HasPrefix(want, "ConfigMap/") {
			t.Errorf("%s missing", want)
		}
	}

	deployments := map[string]*appsv1.Deployment{}
	for _, o := range objs {
		if d, ok := o.obj.(*appsv1.Deployment); ok {
			deployments[d.Name] = d
		}
		if m, ok := o.obj.(interface{ GetNamespace() string }); ok && o.kind != "Namespace" && m.GetNamespace() != "wxlogin" {
			t.Errorf("%s in namespace %q, want wxlogin", o.key, m.GetNamespace())
		}
	}

	t.Run("probes: liveness is /livez, readiness /readyz", func(t *testing.T) {
		for name, d := range deployments {
			c := d.Spec.Template.Spec.Containers[0]
			if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/livez" {
				t.Errorf("%s liveness %+v, want GET /livez", name, c.LivenessProbe)
			}
			if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
				t.Errorf("%s readiness %+v, want GET /readyz", name, c.ReadinessProbe)
			}
			for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
				if p == nil || p.HTTPGet == nil {
					continue
				}
				if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.HTTPGet.Port.StrVal }) {
					t.Errorf("%s probes port %q, which the container does not name", name, p.HTTPGet.Port.StrVal)
				}
			}
		}
	})

	t.Run("requests, nonroot, read-only", func(t *testing.T) {
		for name, d := range deployments {
			spec := d.Spec.Template.Spec
			c := spec.Containers[0]
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s resources %+v, want cpu and memory requests and a memory limit", name, c.Resources)
			}
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s container securityContext %+v", name, sc)
			}
			if ps := spec.SecurityContext; ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot {
				t.Errorf("%s pod does not require nonroot", name)
			}
		}
	})

	t.Run("secrets are files read through *_FILE", func(t *testing.T) {
		check := func(name string, spec corev1.PodSpec) {
			c := spec.Containers[0]
			mounts := map[string]string{} // mount path → secret name
			for _, vm := range c.VolumeMounts {
				for _, v := range spec.Volumes {
					if v.Name == vm.Name && v.Secret != nil {
						mounts[vm.MountPath] = v.Secret.SecretName
					}
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom != nil {
					t.Errorf("%s %s from valueFrom: mount secrets as files", name, e.Name)
				}
				if strings.Contains(e.Name, "SECRET") || strings.Contains(e.Name, "PASSWORD") || e.Name == "WXLOGIN_DATABASE_URL" {
					if !strings.HasSuffix(e.Name, "_FILE") {
						t.Errorf("%s gets %s as a value; want %s_FILE", name, e.Name, e.Name)
					}
				}
				if !strings.HasSuffix(e.Name, "_FILE") {
					continue
				}
				dir, key := filepath.Split(e.Value)
				secret, ok := secrets[mounts[strings.TrimSuffix(dir, "/")]]
				if !ok {
					t.Errorf("%s %s=%s: no Secret mounted at %s", name, e.Name, e.Value, dir)
					continue
				}
				if _, ok := secret.Data[key]; !ok {
					t.Errorf("%s %s: Secret %s has no key %q (has %v)", name, e.Name, secret.Name, key, keys(secret.Data))
				}
			}
		}
		for name, d := range deployments {
			check(name, d.Spec.Template.Spec)
		}
		check("migrate", byKey["Job/wxlogin-migrate"].(*batchv1.Job).Spec.Template.Spec)
		for _, v := range []string{"GATEWAY", "IDENTITY", "SESSION", "EVENTS"} {
			if _, ok := secrets["wxlogin-nats-users"].Data["WXLOGIN_NATS_"+v+"_PASSWORD"]; !ok {
				t.Errorf("wxlogin-nats-users lacks WXLOGIN_NATS_%s_PASSWORD (NATS' auth.conf reads it)", v)
			}
		}
	})

	t.Run("the gateway alone takes outside traffic", func(t *testing.T) {
		for _, o := range objs {
			np, ok := o.obj.(*networkingv1.NetworkPolicy)
			if !ok {
				continue
			}
			for _, rule := range np.Spec.Ingress {
				if len(rule.From) > 0 {
					continue // from named pods or namespaces
				}
				if np.Name != "gateway-ingress" || fmt.Sprint(np.Spec.PodSelector.MatchLabels) != "map[app.kubernetes.io/name:gateway]" {
					t.Errorf("NetworkPolicy %s admits traffic from anywhere", np.Name)
				}
				for _, p := range rule.Ports {
					if p.Port.IntValue() != 8080 {
						t.Errorf("gateway open to anywhere on port %v, want 8080 only", p.Port)
					}
				}
			}
		}
	})

	t.Run("PDBs and HPAs target the Deployments", func(t *testing.T) {
		for _, o := range objs {
			switch x := o.obj.(type) {
			case *policyv1.PodDisruptionBudget:
				name := x.Spec.Selector.MatchLabels["app.kubernetes.io/name"]
				if _, ok := deployments[name]; !ok {
					t.Errorf("PDB %s selects %q, no such Deployment", x.Name, name)
				}
			case *autoscalingv2.HorizontalPodAutoscaler:
				if _, ok := deployments[x.Spec.ScaleTargetRef.Name]; !ok || x.Spec.ScaleTargetRef.Kind != "Deployment" {
					t.Errorf("HPA %s targets %+v", x.Name, x.Spec.ScaleTargetRef)
				}
			}
		}
	})

	t.Run("webhooks: the user events, HTTPS out", func(t *testing.T) {
		env := map[string]string{}
		for _, e := range deployments["webhooks"].Spec.Template.Spec.Containers[0].Env {
			env[e.Name] = e.Value
		}
		if env["WXLOGIN_NATS_USER"] != "events" || env["WXLOGIN_WEBHOOKS_FILE"] == "" {
			t.Errorf("webhooks env %v, want the NATS user events and WXLOGIN_WEBHOOKS_FILE", env)
		}
		np, ok := byKey["NetworkPolicy/webhooks-egress"].(*networkingv1.NetworkPolicy)
		if !ok || np.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] != "webhooks" ||
			len(np.Spec.Egress) != 1 || np.Spec.Egress[0].Ports[0].Port.IntValue() != 443 {
			t.Errorf("webhooks-egress = %+v, want the webhooks pods out on 443", np)
		}
	})

	t.Run("images pinned", func(t *testing.T) {
		for name, d := range deployments {
			img := d.Spec.Template.Spec.Containers[0].Image
			if !strings.Contains(img, ":") || strings.HasSuffix(img, ":latest") {
				t.Errorf("%s image %q, want a pinned tag", name, img)
			}
		}
	})
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// The documented NATS Helm values parse, and name the users' Secret the
// overlay generates.
func TestNATSValues(t *testing.T) {
	raw, err := os.ReadFile("nats-values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("wxlogin-nats-users")) {
		t.Error("nats-values.yaml does not use the Secret wxlogin-nats-users")
	}
	b, _ := json.Marshal(v)
	for _, want := range []string{`"replicas":3`, `"jetstream":{"enabled":true`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("nats-values.yaml lacks %s", want)
		}
	}
}
