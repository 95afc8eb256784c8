// Command gkharness runs Gatekeeper's own validation engine (the frameworks
// constraint client with Gatekeeper's Rego driver, K8s validation target and
// external-data provider cache) outside a cluster, so the project's tests can
// put shipped ConstraintTemplates through the exact code a cluster runs.
//
// The driver is assembled the way Gatekeeper v3.23.1's main.go assembles it
// (setupControllers): provider cache, optional provider response cache with a
// TTL (0 = off, negative = error), client certificate from a tls.crt/tls.key
// pair loaded through controller-runtime's certwatcher with
// EnableExternalDataClientAuth, the K8s native (CEL) driver next to Rego, and
// the audit and webhook enforcement points. Objects are reviewed the way
// pkg/webhook/policy.go does it: an AdmissionRequest wrapped in an
// AugmentedReview, reviewed at the webhook enforcement point with the
// namespace object, and deny/warn messages built from each result's
// enforcement action.
//
// Resources are loaded the way the controllers load them: a
// ConstraintTemplate is converted to the unversioned type with Gatekeeper's
// scheme, checked with CreateCRD (what the validating webhook does on
// admission of a template) and added with AddTemplate; a Constraint is
// checked with ValidateConstraint and added with AddConstraint; a Provider is
// converted and Upserted into the provider cache (which enforces https and
// caBundle, as on admission).
//
// Output is JSON, one document per line, on stdout:
//
//	{"loaded": {...}}                                    after set-up succeeded
//	{"error": {"stage": "template", "file": ..., ...}}   set-up failure (exit 2)
//	{"review": N, "object": "...", "allowed": bool, "violations": [...], ...}
//
// Test fixture only. Written for this project; no code copied from Gatekeeper.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	externaldataUnversioned "github.com/open-policy-agent/frameworks/constraint/pkg/apis/externaldata/unversioned"
	constraintclient "github.com/open-policy-agent/frameworks/constraint/pkg/client"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers/rego"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/reviews"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	frameworksexternaldata "github.com/open-policy-agent/frameworks/constraint/pkg/externaldata"
	"github.com/open-policy-agent/gatekeeper/v3/apis"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/drivers/k8scel"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/gator/reader"
	mutationtypes "github.com/open-policy-agent/gatekeeper/v3/pkg/mutation/types"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/target"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/util"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

type options struct {
	templates, constraints, providers, objects, namespaces, disabledBuiltins multiFlag
	clientCert, clientKey                                                    string
	cacheTTL                                                                 time.Duration
	stdin                                                                    bool
	defaultNamespace                                                         string
	username                                                                 string
	enableK8sCel                                                             bool
}

// setupError is a structured set-up failure, printed as {"error": {...}}.
type setupError struct {
	Stage   string `json:"stage"`
	File    string `json:"file,omitempty"`
	Kind    string `json:"kind,omitempty"`
	Name    string `json:"name,omitempty"`
	Message string `json:"message"`
}

type violation struct {
	Constraint        string         `json:"constraint"`
	ConstraintKind    string         `json:"constraintKind"`
	EnforcementAction string         `json:"enforcementAction"`
	Actions           []string       `json:"actions"`
	Message           string         `json:"message"`
	Details           interface{}    `json:"details,omitempty"`
	Metadata          map[string]any `json:"-"`
}

type reviewResult struct {
	Review     int         `json:"review"`
	ID         string      `json:"id,omitempty"`
	Object     string      `json:"object"`
	Allowed    bool        `json:"allowed"`
	Violations []violation `json:"violations"`
	Denials    []string    `json:"denials"`
	Warnings   []string    `json:"warnings"`
	// Message is what the validating webhook puts in the AdmissionResponse
	// status when it denies: the deny messages joined by newlines.
	Message string `json:"message,omitempty"`
	// Error is a review that could not be evaluated. The webhook answers
	// such a request with HTTP 500 (admission.Errored); what the API server
	// then does depends on the webhook's failurePolicy, so it is reported
	// separately and never as "allowed".
	Error     string `json:"error,omitempty"`
	ElapsedMs int64  `json:"elapsedMs"`
}

// streamItem is one review read from stdin: either a bare Kubernetes object
// or this envelope.
type streamItem struct {
	ID        string          `json:"id"`
	Object    json.RawMessage `json:"object"`
	OldObject json.RawMessage `json:"oldObject"`
	Namespace string          `json:"namespace"`
	Operation string          `json:"operation"`
	Username  string          `json:"username"`
}

var out = json.NewEncoder(os.Stdout)

func emit(v interface{}) {
	if err := out.Encode(v); err != nil {
		fmt.Fprintf(os.Stderr, "gkharness: write stdout: %v\n", err)
		os.Exit(4)
	}
}

func fail(e setupError) {
	emit(map[string]setupError{"error": e})
	os.Exit(2)
}

func main() {
	o := options{}
	flag.Var(&o.templates, "template", "ConstraintTemplate YAML file (repeatable; a file may hold several documents)")
	flag.Var(&o.constraints, "constraint", "Constraint YAML file (repeatable; several documents allowed)")
	flag.Var(&o.providers, "provider", "externaldata.gatekeeper.sh Provider YAML file (repeatable)")
	flag.Var(&o.objects, "object", "object YAML file to review (repeatable; each document is one review)")
	flag.Var(&o.namespaces, "namespace-object", "Namespace YAML file: what the webhook would fetch from the API server")
	flag.Var(&o.disabledBuiltins, "disable-opa-builtin", "as Gatekeeper's flag of that name (repeatable)")
	flag.StringVar(&o.clientCert, "client-cert", "", "client certificate (Gatekeeper's <cert-dir>/tls.crt)")
	flag.StringVar(&o.clientKey, "client-key", "", "client key (Gatekeeper's <cert-dir>/tls.key)")
	flag.DurationVar(&o.cacheTTL, "external-data-provider-response-cache-ttl", 3*time.Minute,
		"as Gatekeeper's flag: TTL of the provider response cache; 0 disables it")
	flag.BoolVar(&o.stdin, "stdin", false, "read reviews from stdin: a stream of JSON values, each an object or {id, object, oldObject, namespace, operation, username}; one result line per value, flushed at once")
	flag.StringVar(&o.defaultNamespace, "default-namespace", "default", "namespace for namespaced objects that name none")
	flag.StringVar(&o.username, "username", "kubernetes-admin", "AdmissionRequest userInfo.username")
	flag.BoolVar(&o.enableK8sCel, "enable-k8s-native-validation", true, "as Gatekeeper's flag: add the K8s native (CEL) driver")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "gkharness: unexpected arguments %q\n", flag.Args())
		os.Exit(1)
	}
	if (o.clientCert == "") != (o.clientKey == "") {
		fmt.Fprintln(os.Stderr, "gkharness: -client-cert and -client-key go together")
		os.Exit(1)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	scheme := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		fail(setupError{Stage: "scheme", Message: err.Error()})
	}
	if err := apis.AddToScheme(scheme); err != nil {
		fail(setupError{Stage: "scheme", Message: err.Error()})
	}

	client, providerCache := buildClient(ctx, &o)
	loaded := loadResources(ctx, &o, scheme, client, providerCache)
	emit(map[string]interface{}{"loaded": loaded})

	namespaces := loadNamespaces(&o)
	n := 0
	exit := 0
	for _, f := range o.objects {
		objs := readObjects(f)
		for _, obj := range objs {
			n++
			r := reviewObject(ctx, client, namespaces, &o, n, "", obj, nil, "", "")
			emit(r)
			if r.Error != "" {
				exit = 3
			}
		}
	}
	if o.stdin {
		dec := json.NewDecoder(bufio.NewReader(os.Stdin))
		for {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				fmt.Fprintf(os.Stderr, "gkharness: bad JSON on stdin: %v\n", err)
				os.Exit(1)
			}
			n++
			r := reviewStreamItem(ctx, client, namespaces, &o, n, raw)
			emit(r)
			if r.Error != "" {
				exit = 3
			}
		}
	}
	os.Exit(exit)
}

// buildClient assembles the constraint client as Gatekeeper's setupControllers does.
func buildClient(ctx context.Context, o *options) (*constraintclient.Client, *frameworksexternaldata.ProviderCache) {
	args := []rego.Arg{rego.Tracing(false), rego.DisableBuiltins(o.disabledBuiltins...)}

	providerCache := frameworksexternaldata.NewCache()
	args = append(args, rego.AddExternalDataProviderCache(providerCache))
	switch {
	case o.cacheTTL > 0:
		args = append(args, rego.AddExternalDataProviderResponseCache(
			frameworksexternaldata.NewProviderResponseCache(ctx, o.cacheTTL)))
	case o.cacheTTL == 0:
		// response cache disabled, as in Gatekeeper
	default:
		fail(setupError{Stage: "flags", Message: fmt.Sprintf(
			"invalid value for external-data-provider-response-cache-ttl: %s (want >= 0)", o.cacheTTL)})
	}

	if o.clientCert != "" {
		cw, err := certwatcher.New(o.clientCert, o.clientKey)
		if err != nil {
			fail(setupError{Stage: "client-cert", File: o.clientCert, Message: err.Error()})
		}
		// The manager starts the watcher in Gatekeeper; do the same so a
		// rotated pair on disk is picked up.
		go func() { _ = cw.Start(ctx) }()
		args = append(args, rego.EnableExternalDataClientAuth(), rego.AddExternalDataClientCertWatcher(cw))
	}

	cfArgs := []constraintclient.Opt{constraintclient.Targets(&target.K8sValidationTarget{})}
	if o.enableK8sCel {
		k8sDriver, err := k8scel.New()
		if err != nil {
			fail(setupError{Stage: "driver", Message: "k8scel: " + err.Error()})
		}
		cfArgs = append(cfArgs, constraintclient.Driver(k8sDriver))
	}
	// Gatekeeper's default --enable-referential-rules=true.
	args = append(args, rego.Externs("inventory"))
	driver, err := rego.New(args...)
	if err != nil {
		fail(setupError{Stage: "driver", Message: err.Error()})
	}
	cfArgs = append(cfArgs, constraintclient.Driver(driver),
		constraintclient.EnforcementPoints(util.AuditEnforcementPoint, util.WebhookEnforcementPoint))
	client, err := constraintclient.NewClient(cfArgs...)
	if err != nil {
		fail(setupError{Stage: "driver", Message: "constraint client: " + err.Error()})
	}
	return client, providerCache
}

func loadResources(ctx context.Context, o *options, scheme *k8sruntime.Scheme,
	client *constraintclient.Client, providerCache *frameworksexternaldata.ProviderCache,
) map[string][]string {
	loaded := map[string][]string{"templates": {}, "constraints": {}, "providers": {}}

	for _, f := range o.providers {
		for _, u := range readObjects(f) {
			if u.GetKind() != "Provider" {
				fail(setupError{Stage: "provider", File: f, Kind: u.GetKind(), Name: u.GetName(),
					Message: fmt.Sprintf("expected kind Provider, found %q", u.GetKind())})
			}
			typed, err := scheme.New(u.GroupVersionKind())
			if err == nil {
				err = scheme.Convert(u, typed, nil)
			}
			p := &externaldataUnversioned.Provider{}
			if err == nil {
				err = scheme.Convert(typed, p, nil)
			}
			if err != nil {
				fail(setupError{Stage: "provider", File: f, Kind: u.GetKind(), Name: u.GetName(),
					Message: "conversion error: " + err.Error()})
			}
			if err := providerCache.Upsert(p); err != nil {
				fail(setupError{Stage: "provider", File: f, Kind: u.GetKind(), Name: u.GetName(), Message: err.Error()})
			}
			loaded["providers"] = append(loaded["providers"], p.GetName())
		}
	}

	for _, f := range o.templates {
		for _, u := range readObjects(f) {
			ct, err := toTemplate(scheme, u)
			if err != nil {
				fail(setupError{Stage: "template", File: f, Kind: u.GetKind(), Name: u.GetName(), Message: err.Error()})
			}
			// The validating webhook checks a template with CreateCRD on
			// admission; the controller then calls AddTemplate.
			if _, err := client.CreateCRD(ctx, ct); err != nil {
				fail(setupError{Stage: "template", File: f, Kind: u.GetKind(), Name: u.GetName(), Message: err.Error()})
			}
			if _, err := client.AddTemplate(ctx, ct); err != nil {
				fail(setupError{Stage: "template", File: f, Kind: u.GetKind(), Name: u.GetName(), Message: err.Error()})
			}
			loaded["templates"] = append(loaded["templates"], ct.GetName())
		}
	}

	for _, f := range o.constraints {
		for _, u := range readObjects(f) {
			if err := client.ValidateConstraint(u); err != nil {
				fail(setupError{Stage: "constraint", File: f, Kind: u.GetKind(), Name: u.GetName(), Message: err.Error()})
			}
			if action, found, _ := unstructured.NestedString(u.Object, "spec", "enforcementAction"); found && action != "" {
				if err := util.ValidateEnforcementAction(util.EnforcementAction(action), u.Object); err != nil {
					fail(setupError{Stage: "constraint", File: f, Kind: u.GetKind(), Name: u.GetName(), Message: err.Error()})
				}
			}
			if _, err := client.AddConstraint(ctx, u); err != nil {
				fail(setupError{Stage: "constraint", File: f, Kind: u.GetKind(), Name: u.GetName(), Message: err.Error()})
			}
			loaded["constraints"] = append(loaded["constraints"], u.GetKind()+"/"+u.GetName())
		}
	}
	return loaded
}

// toTemplate converts a versioned ConstraintTemplate to the unversioned type
// with Gatekeeper's scheme, as the controller does.
func toTemplate(scheme *k8sruntime.Scheme, u *unstructured.Unstructured) (*templates.ConstraintTemplate, error) {
	if !reader.IsTemplate(u) {
		return nil, fmt.Errorf("expected a templates.gatekeeper.sh ConstraintTemplate, found %s", u.GroupVersionKind())
	}
	typed, err := scheme.New(u.GroupVersionKind())
	if err != nil {
		return nil, fmt.Errorf("unknown template version %s: %w", u.GroupVersionKind(), err)
	}
	if err := scheme.Convert(u, typed, nil); err != nil {
		return nil, fmt.Errorf("conversion error: %w", err)
	}
	ct := &templates.ConstraintTemplate{}
	if err := scheme.Convert(typed, ct, nil); err != nil {
		return nil, fmt.Errorf("conversion error: %w", err)
	}
	return ct, nil
}

func readObjects(f string) []*unstructured.Unstructured {
	data, err := os.ReadFile(f)
	if err != nil {
		fail(setupError{Stage: "read", File: f, Message: err.Error()})
	}
	objs, err := reader.ReadK8sResources(bytes.NewReader(data))
	if err != nil {
		fail(setupError{Stage: "read", File: f, Message: err.Error()})
	}
	if len(objs) == 0 {
		fail(setupError{Stage: "read", File: f, Message: "no Kubernetes object in file"})
	}
	return objs
}

func loadNamespaces(o *options) map[string]*corev1.Namespace {
	nss := map[string]*corev1.Namespace{}
	for _, f := range o.namespaces {
		for _, u := range readObjects(f) {
			ns := &corev1.Namespace{}
			if err := k8sruntime.DefaultUnstructuredConverter.FromUnstructured(u.Object, ns); err != nil || u.GetKind() != "Namespace" {
				fail(setupError{Stage: "namespace", File: f, Kind: u.GetKind(), Name: u.GetName(),
					Message: fmt.Sprintf("expected a v1 Namespace (%v)", err)})
			}
			nss[ns.Name] = ns
		}
	}
	return nss
}

func reviewStreamItem(ctx context.Context, client *constraintclient.Client, nss map[string]*corev1.Namespace,
	o *options, n int, raw json.RawMessage,
) reviewResult {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		return reviewResult{Review: n, Error: "stdin value is not a JSON object: " + err.Error(), Violations: []violation{}}
	}
	item := streamItem{}
	if _, isObject := probe["kind"]; isObject {
		item.Object = raw
	} else if err := json.Unmarshal(raw, &item); err != nil {
		return reviewResult{Review: n, Error: "bad review envelope: " + err.Error(), Violations: []violation{}}
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(item.Object); err != nil {
		return reviewResult{Review: n, ID: item.ID, Error: "bad object: " + err.Error(), Violations: []violation{}}
	}
	var old *unstructured.Unstructured
	if len(item.OldObject) > 0 && string(item.OldObject) != "null" {
		old = &unstructured.Unstructured{}
		if err := old.UnmarshalJSON(item.OldObject); err != nil {
			return reviewResult{Review: n, ID: item.ID, Error: "bad oldObject: " + err.Error(), Violations: []violation{}}
		}
	}
	return reviewObject(ctx, client, nss, o, n, item.ID, obj, old, item.Operation, item.Username, item.Namespace)
}

// reviewObject builds the AdmissionRequest the API server would send for a
// CREATE (or the given operation) of obj and reviews it as the validating
// webhook does.
func reviewObject(ctx context.Context, client *constraintclient.Client, nss map[string]*corev1.Namespace,
	o *options, n int, id string, obj, old *unstructured.Unstructured, operation, username string, namespace ...string,
) reviewResult {
	start := time.Now()
	res := reviewResult{Review: n, ID: id, Violations: []violation{}, Denials: []string{}, Warnings: []string{}}
	if operation == "" {
		operation = string(admissionv1.Create)
	}
	if username == "" {
		username = o.username
	}
	gvk := obj.GroupVersionKind()
	ns := obj.GetNamespace()
	if len(namespace) > 0 && namespace[0] != "" {
		ns = namespace[0]
	}
	if ns == "" && gvk.Kind != "Namespace" && isNamespaced(gvk.Kind) {
		ns = o.defaultNamespace
	}
	if ns != "" {
		obj.SetNamespace(ns)
	}
	res.Object = fmt.Sprintf("%s/%s", gvk.Kind, obj.GetName())
	if ns != "" {
		res.Object = fmt.Sprintf("%s/%s/%s", gvk.Kind, ns, obj.GetName())
	}

	raw, err := obj.MarshalJSON()
	if err != nil {
		res.Error = "encode object: " + err.Error()
		return res
	}
	req := &admissionv1.AdmissionRequest{
		UID:       types.UID(uuid.NewUUID()),
		Kind:      metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
		Resource:  metav1.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: resourceName(gvk.Kind)},
		Name:      obj.GetName(),
		Namespace: ns,
		Operation: admissionv1.Operation(operation),
		UserInfo:  authenticationv1.UserInfo{Username: username},
		Object:    k8sruntime.RawExtension{Raw: raw},
	}
	if old != nil {
		oldRaw, err := old.MarshalJSON()
		if err != nil {
			res.Error = "encode oldObject: " + err.Error()
			return res
		}
		req.OldObject = k8sruntime.RawExtension{Raw: oldRaw}
	}
	if operation == string(admissionv1.Delete) {
		req.OldObject, req.Object = req.Object, k8sruntime.RawExtension{}
	}
	// As createReviewForRequest: namespaces themselves are reviewed without one.
	if req.Kind.Kind == "Namespace" && req.Kind.Group == "" {
		req.Namespace = ""
	}
	review := &target.AugmentedReview{
		AdmissionRequest: req,
		Source:           mutationtypes.SourceTypeOriginal,
		IsAdmission:      true,
	}
	if req.Namespace != "" {
		nsObj, ok := nss[req.Namespace]
		if !ok {
			// What the API server would return for a namespace with no labels.
			nsObj = &corev1.Namespace{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
				ObjectMeta: metav1.ObjectMeta{Name: req.Namespace},
			}
		}
		review.Namespace = nsObj
	}

	opts := []reviews.ReviewOpt{reviews.EnforcementPoint(util.WebhookEnforcementPoint), reviews.Tracing(false)}
	if opt := util.NamespaceReviewOpt(review.Namespace, logr.Discard()); opt != nil {
		opts = append(opts, opt)
	}
	resp, err := client.Review(ctx, review, opts...)
	res.ElapsedMs = time.Since(start).Milliseconds()
	if err != nil {
		res.Error = fmt.Sprintf("error reviewing resource %s: %v", req.Name, err)
		return res
	}
	for _, r := range resp.Results() {
		v := violation{
			Constraint:        r.Constraint.GetName(),
			ConstraintKind:    r.Constraint.GetKind(),
			EnforcementAction: r.EnforcementAction,
			Message:           r.Msg,
			Actions:           []string{},
		}
		if d, ok := r.Metadata["details"]; ok {
			v.Details = d
		}
		// As the webhook: "scoped" uses the scoped actions, anything else
		// is validated and used as is; invalid actions are skipped.
		if r.EnforcementAction == string(util.Scoped) {
			for _, a := range r.ScopedEnforcementActions {
				if util.ValidateEnforcementAction(util.EnforcementAction(a), r.Constraint.Object) == nil {
					v.Actions = append(v.Actions, a)
				}
			}
			if len(v.Actions) == 0 {
				res.Violations = append(res.Violations, v)
				continue
			}
		} else if util.ValidateEnforcementAction(util.EnforcementAction(r.EnforcementAction), r.Constraint.Object) == nil {
			v.Actions = append(v.Actions, r.EnforcementAction)
		}
		for _, a := range v.Actions {
			line := fmt.Sprintf("[%s] %s", r.Constraint.GetName(), r.Msg)
			switch a {
			case string(util.Deny):
				res.Denials = append(res.Denials, line)
			case string(util.Warn):
				res.Warnings = append(res.Warnings, line)
			}
		}
		res.Violations = append(res.Violations, v)
	}
	res.Allowed = len(res.Denials) == 0
	res.Message = strings.Join(res.Denials, "\n")
	return res
}

// isNamespaced knows the cluster-scoped kinds a test is likely to review;
// everything else is treated as namespaced, like Pods and Deployments.
func isNamespaced(kind string) bool {
	switch kind {
	case "Namespace", "Node", "ClusterRole", "ClusterRoleBinding", "PersistentVolume",
		"StorageClass", "CustomResourceDefinition", "ValidatingWebhookConfiguration",
		"MutatingWebhookConfiguration", "PriorityClass":
		return false
	}
	return true
}

// resourceName gives the plural resource for the kinds tests review. The
// API server's discovery is not available here; the Rego policies read
// input.review.kind, and Resource is informational.
func resourceName(kind string) string {
	k := strings.ToLower(kind)
	switch {
	case strings.HasSuffix(k, "s"):
		return k + "es"
	case strings.HasSuffix(k, "y"):
		return strings.TrimSuffix(k, "y") + "ies"
	}
	return k + "s"
}
