// Package envoy holds the Envoy configuration of docs/verifying-tokens.md
// and its check: there is no Envoy binary here, so envoy.yaml is validated
// against Envoy's own v3 API (the go-control-plane protos with their
// protoc-gen-validate rules, which Envoy applies when it loads a config)
// and against wxlogin's token contract.
package envoy

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

// What the gateway publishes (RFC 8414 metadata, defaults of
// WXLOGIN_JWT_ISSUER and WXLOGIN_JWT_AUDIENCE).
const (
	issuer   = "wxlogin"
	audience = "wxlogin"
	jwksPath = "/.well-known/jwks.json"
)

// load decodes envoy.yaml as Envoy would and validates it, typed configs
// included: the validation rules do not reach into an Any, Envoy checks
// each extension's config when it builds the filter.
func load(t *testing.T, yamlText []byte) (*bootstrapv3.Bootstrap, error) {
	t.Helper()
	js, err := yaml.YAMLToJSON(yamlText)
	if err != nil {
		t.Fatalf("envoy.yaml: %v", err)
	}
	var bs bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &bs); err != nil {
		return nil, err
	}
	if err := bs.ValidateAll(); err != nil {
		return nil, err
	}
	for _, l := range bs.GetStaticResources().GetListeners() {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				var hcm hcmv3.HttpConnectionManager
				if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
					return nil, fmt.Errorf("filter %s: %w", f.GetName(), err)
				}
				if err := hcm.ValidateAll(); err != nil {
					return nil, fmt.Errorf("filter %s: %w", f.GetName(), err)
				}
				for _, hf := range hcm.GetHttpFilters() {
					m, err := hf.GetTypedConfig().UnmarshalNew()
					if err != nil {
						return nil, fmt.Errorf("http filter %s: %w", hf.GetName(), err)
					}
					v, ok := m.(interface{ ValidateAll() error })
					if !ok {
						return nil, fmt.Errorf("http filter %s: %T has no validation", hf.GetName(), m)
					}
					if err := v.ValidateAll(); err != nil {
						return nil, fmt.Errorf("http filter %s: %w", hf.GetName(), err)
					}
				}
			}
		}
	}
	return &bs, nil
}

func TestEnvoyConfig(t *testing.T) {
	raw, err := os.ReadFile("envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bs, err := load(t, raw)
	if err != nil {
		t.Fatalf("envoy.yaml is not a valid Envoy v3 bootstrap: %v", err)
	}

	var clusters []string
	for _, c := range bs.GetStaticResources().GetClusters() {
		clusters = append(clusters, c.GetName())
	}
	listeners := bs.GetStaticResources().GetListeners()
	if len(listeners) != 1 {
		t.Fatalf("%d listeners, want 1", len(listeners))
	}
	var hcm hcmv3.HttpConnectionManager
	if err := listeners[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	filters := hcm.GetHttpFilters()
	if len(filters) < 2 || filters[0].GetName() != "envoy.filters.http.jwt_authn" || filters[len(filters)-1].GetName() != "envoy.filters.http.router" {
		t.Fatalf("http filters %v: want jwt_authn first and the router last", filters)
	}
	var ja jwtauthnv3.JwtAuthentication
	if err := filters[0].GetTypedConfig().UnmarshalTo(&ja); err != nil {
		t.Fatal(err)
	}
	p := ja.GetProviders()["wxlogin"]
	if p == nil {
		t.Fatal("no provider wxlogin")
	}
	if p.GetIssuer() != issuer || !slices.Equal(p.GetAudiences(), []string{audience}) {
		t.Errorf("issuer %q audiences %v, want %q [%q]", p.GetIssuer(), p.GetAudiences(), issuer, audience)
	}
	if s := p.GetClockSkewSeconds(); s > 60 {
		t.Errorf("clock skew %d s, the gateway allows at most 60", s)
	}
	uri := p.GetRemoteJwks().GetHttpUri()
	if !strings.HasSuffix(uri.GetUri(), jwksPath) || !slices.Contains(clusters, uri.GetCluster()) {
		t.Errorf("remote_jwks %s via cluster %q, want …%s via a defined cluster (%v)", uri.GetUri(), uri.GetCluster(), jwksPath, clusters)
	}
	// Every route but the health check requires a token.
	var required bool
	for _, r := range ja.GetRules() {
		if r.GetMatch().GetPrefix() == "/" {
			required = r.GetRequires().GetProviderName() == "wxlogin"
		}
	}
	if !required {
		t.Error(`no rule requires the wxlogin provider on prefix "/"`)
	}
}

// TestEnvoyConfigCheckFails: the check refuses what Envoy would refuse.
func TestEnvoyConfigCheckFails(t *testing.T) {
	raw, err := os.ReadFile("envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(string) string{
		"unknown field":      func(s string) string { return strings.Replace(s, "forward: false", "forwards: false", 1) },
		"empty cluster name": func(s string) string { return strings.Replace(s, "cluster: wxlogin_gateway", `cluster: ""`, 1) },
		"unknown filter type": func(s string) string {
			return strings.Replace(s, "jwt_authn.v3.JwtAuthentication", "jwt_authn.v3.JwtAuth", 1)
		},
		"negative fetch timeout": func(s string) string { return strings.Replace(s, "timeout: 2s", "timeout: -2s", 1) },
	} {
		t.Run(name, func(t *testing.T) {
			edited := edit(string(raw))
			if edited == string(raw) {
				t.Fatal("the edit changed nothing")
			}
			if _, err := load(t, []byte(edited)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
