// gatekeeper-eval evaluates Kubernetes objects against a ConstraintTemplate and a Constraint with
// Gatekeeper's own policy engine (frameworks' Rego driver and Gatekeeper's admission target, at
// the versions Gatekeeper v3.23.0 pins), calling a real external data provider the way
// Gatekeeper does: a Provider resource (https URL, caBundle, timeout in seconds), TLS 1.3, the
// client certificate presented for mTLS, and the per-key response cache.
//
// gator cannot do this (it builds the driver without external data), so the StellaOps tests use
// this small program to prove that the generated templates compile in Gatekeeper (Rego v1, libs
// under data.lib, no rego.v1 import, no data references, http.send disabled) and that they
// decide correctly on the provider's real answers.
//
// Usage:
//
//	gatekeeper-eval -template T.yaml -constraint C.yaml -provider-url https://127.0.0.1:8443/gatekeeper/v1/verify \
//	    -ca-file ca.crt [-client-cert tls.crt -client-key tls.key] [-timeout 2] [-repeat 1] OBJECT.yaml...
//
// Prints one JSON object: {"<object file>": [{"msg": "...", "enforcementAction": "deny"}, ...], ...},
// with every object reviewed -repeat times in a row (later rounds hit Gatekeeper's response cache;
// every round must give the same answer). Exit status 0 after a review, 2 on setup errors.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"github.com/open-policy-agent/frameworks/constraint/pkg/apis/externaldata/unversioned"
	constraintclient "github.com/open-policy-agent/frameworks/constraint/pkg/client"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers/rego"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/reviews"
	frameworksexternaldata "github.com/open-policy-agent/frameworks/constraint/pkg/externaldata"
	"github.com/open-policy-agent/gatekeeper/v3/apis"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/gator/reader"
	mutationtypes "github.com/open-policy-agent/gatekeeper/v3/pkg/mutation/types"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/target"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/util"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

type result struct {
	Msg               string `json:"msg"`
	EnforcementAction string `json:"enforcementAction"`
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gatekeeper-eval: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	templatePath := flag.String("template", "", "ConstraintTemplate YAML")
	constraintPath := flag.String("constraint", "", "Constraint YAML")
	providerName := flag.String("provider-name", "stellaops", "name of the Provider resource")
	providerURL := flag.String("provider-url", "", "Provider spec.url (https)")
	caFile := flag.String("ca-file", "", "PEM CA bundle for spec.caBundle")
	clientCert := flag.String("client-cert", "", "client certificate Gatekeeper presents (mTLS)")
	clientKey := flag.String("client-key", "", "its key")
	timeout := flag.Int("timeout", 2, "Provider spec.timeout, whole seconds")
	cacheTTL := flag.Duration("cache-ttl", 3*time.Minute, "--external-data-provider-response-cache-ttl")
	repeat := flag.Int("repeat", 1, "review every object this many times")
	flag.Parse()
	if *templatePath == "" || *constraintPath == "" || *providerURL == "" || *caFile == "" || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx := context.Background()

	ca, err := os.ReadFile(*caFile)
	if err != nil {
		fail("reading -ca-file: %v", err)
	}
	providers := frameworksexternaldata.NewCache()
	err = providers.Upsert(&unversioned.Provider{
		ObjectMeta: metav1.ObjectMeta{Name: *providerName},
		Spec:       unversioned.ProviderSpec{URL: *providerURL, Timeout: *timeout, CABundle: base64.StdEncoding.EncodeToString(ca)},
	})
	if err != nil {
		fail("Provider refused: %v", err)
	}

	// As Gatekeeper's main.go wires its driver: external data, the response cache, builtins
	// disabled as its manifests intend (http.send), no referential data.
	args := []rego.Arg{
		rego.Tracing(false),
		rego.DisableBuiltins("http.send"),
		rego.AddExternalDataProviderCache(providers),
		rego.AddExternalDataProviderResponseCache(frameworksexternaldata.NewProviderResponseCache(ctx, *cacheTTL)),
		rego.Externs(),
	}
	if *clientCert != "" {
		watcher, err := certwatcher.New(*clientCert, *clientKey)
		if err != nil {
			fail("client certificate: %v", err)
		}
		args = append(args, rego.EnableExternalDataClientAuth(), rego.AddExternalDataClientCertWatcher(watcher))
	}
	driver, err := rego.New(args...)
	if err != nil {
		fail("driver: %v", err)
	}
	client, err := constraintclient.NewClient(
		constraintclient.Targets(&target.K8sValidationTarget{}),
		constraintclient.Driver(driver),
		constraintclient.EnforcementPoints(util.WebhookEnforcementPoint),
	)
	if err != nil {
		fail("client: %v", err)
	}

	scheme := runtime.NewScheme()
	if err := apis.AddToScheme(scheme); err != nil {
		fail("scheme: %v", err)
	}
	root := os.DirFS("/")
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			fail("%s: %v", p, err)
		}
		return a[1:]
	}
	template, err := reader.ReadTemplate(scheme, root, abs(*templatePath))
	if err != nil {
		fail("template: %v", err)
	}
	if _, err := client.AddTemplate(ctx, template); err != nil {
		fail("AddTemplate (Gatekeeper refuses the template): %v", err)
	}
	constraint, err := reader.ReadConstraint(root, abs(*constraintPath))
	if err != nil {
		fail("constraint: %v", err)
	}
	if _, err := client.AddConstraint(ctx, constraint); err != nil {
		fail("AddConstraint: %v", err)
	}

	out := map[string][]result{}
	for _, path := range flag.Args() {
		objects, err := reader.ReadK8sResources(mustOpen(path))
		if err != nil || len(objects) != 1 {
			fail("%s: want one object (%v)", path, err)
		}
		var first []result
		for round := 0; round < *repeat; round++ {
			review, err := client.Review(ctx, target.AugmentedUnstructured{Object: *objects[0], Source: mutationtypes.SourceTypeOriginal},
				reviews.EnforcementPoint(util.WebhookEnforcementPoint))
			if err != nil {
				fail("review %s: %v", path, err)
			}
			got := []result{}
			for _, r := range review.Results() {
				got = append(got, result{Msg: r.Msg, EnforcementAction: r.EnforcementAction})
			}
			if round == 0 {
				first = got
			} else if !reflect.DeepEqual(first, got) {
				fail("review %s round %d differs from round 0: %v vs %v", path, round, got, first)
			}
		}
		out[path] = first
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail("output: %v", err)
	}
}

func mustOpen(path string) *os.File {
	f, err := os.Open(path)
	if err != nil {
		fail("%v", err)
	}
	return f
}
