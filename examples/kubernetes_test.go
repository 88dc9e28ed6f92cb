package examples

// Structural checks of the Kubernetes example (examples/kubernetes). There
// is no cluster and no schema download here, so the test reads the
// manifests with yaml.v3, builds each kustomization the way kustomize would
// for the features the example uses (resources, strategic merge patches
// that merge lists by name, secret generators), and checks that the
// manifests agree with the policy they carry, loaded by Gatehouse's own
// loader.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse-dev/gatehouse/internal/app"
)

const k8sDir = "kubernetes"

type k8sObj = map[string]any

// k8sDoc is one YAML document of a manifest file.
type k8sDoc struct {
	file string
	o    k8sObj
}

func (d k8sDoc) kind() string { s, _ := d.o["kind"].(string); return s }
func (d k8sDoc) name() string { s, _ := k8sDig(d.o, "metadata", "name").(string); return s }
func (d k8sDoc) String() string {
	return fmt.Sprintf("%s %s (%s)", d.kind(), d.name(), d.file)
}

func k8sDig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(k8sObj)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func k8sList(v any) []any { l, _ := v.([]any); return l }

func k8sStr(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func k8sReadDocs(t *testing.T, file string) []k8sDoc {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []k8sDoc
	for {
		var o k8sObj
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: not valid YAML: %v", file, err)
		}
		if o != nil {
			out = append(out, k8sDoc{file, o})
		}
	}
	return out
}

// TestKubernetesManifestsAreWellFormed parses every YAML document under
// examples/kubernetes.
func TestKubernetesManifestsAreWellFormed(t *testing.T) {
	n := 0
	err := filepath.WalkDir(k8sDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || (filepath.Ext(p) != ".yaml" && filepath.Ext(p) != ".yml") {
			return err
		}
		for i, d := range k8sReadDocs(t, p) {
			n++
			where := fmt.Sprintf("%s (document %d)", p, i+1)
			if k8sStr(d.o["apiVersion"]) == "" || d.kind() == "" {
				t.Errorf("%s: missing apiVersion or kind", where)
			}
			if d.kind() != "Kustomization" && d.name() == "" {
				t.Errorf("%s: missing metadata.name", where)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 6 {
		t.Fatalf("only %d YAML documents under %s; is the example there?", n, k8sDir)
	}
}

// k8sBuild is the outcome of a kustomization: its objects and what its
// secret generators will produce (name -> keys).
type k8sBuild struct {
	dir     string
	objects []k8sDoc
	secrets map[string][]string
}

func (b *k8sBuild) find(kind, name string) *k8sDoc {
	for i := range b.objects {
		if b.objects[i].kind() == kind && (name == "" || b.objects[i].name() == name) {
			return &b.objects[i]
		}
	}
	return nil
}

// k8sKustomize builds dir's kustomization.yaml, checking that everything it
// names exists.
func k8sKustomize(t *testing.T, dir string) *k8sBuild {
	t.Helper()
	kf := filepath.Join(dir, "kustomization.yaml")
	docs := k8sReadDocs(t, kf)
	if len(docs) != 1 || docs[0].kind() != "Kustomization" {
		t.Fatalf("%s: want one Kustomization document", kf)
	}
	k := docs[0].o
	b := &k8sBuild{dir: dir, secrets: map[string][]string{}}
	for _, r := range k8sList(k["resources"]) {
		p := filepath.Join(dir, k8sStr(r))
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: resource %q does not exist: %v", kf, k8sStr(r), err)
		}
		if st.IsDir() {
			sub := k8sKustomize(t, p)
			b.objects = append(b.objects, sub.objects...)
			for n, keys := range sub.secrets {
				b.secrets[n] = keys
			}
			continue
		}
		b.objects = append(b.objects, k8sReadDocs(t, p)...)
	}
	for _, g := range k8sList(k["secretGenerator"]) {
		name := k8sStr(k8sDig(g, "name"))
		var keys []string
		for _, e := range k8sList(k8sDig(g, "envs")) {
			// Real values are never committed: the template next to the
			// file says which keys it holds.
			p := filepath.Join(dir, k8sStr(e))
			keys = append(keys, k8sEnvKeys(t, kf, p)...)
		}
		for _, f := range k8sList(k8sDig(g, "files")) {
			key, src, ok := strings.Cut(k8sStr(f), "=")
			if !ok {
				key = filepath.Base(src)
			}
			if _, err := os.Stat(filepath.Dir(filepath.Join(dir, src))); err != nil {
				t.Errorf("%s: secretGenerator %s: folder of %q does not exist", kf, name, src)
			}
			keys = append(keys, key)
		}
		b.secrets[name] = keys
	}
	for _, p := range k8sList(k["patches"]) {
		if k8sDig(p, "path") == nil {
			t.Fatalf("%s: only patches with a path are supported by this test", kf)
		}
		pf := filepath.Join(dir, k8sStr(k8sDig(p, "path")))
		if _, err := os.Stat(pf); err != nil {
			t.Fatalf("%s: patch %q does not exist", kf, k8sStr(k8sDig(p, "path")))
		}
		for _, pd := range k8sReadDocs(t, pf) {
			kind, name := pd.kind(), pd.name()
			if tk := k8sStr(k8sDig(p, "target", "kind")); tk != "" {
				kind = tk
			}
			if tn := k8sStr(k8sDig(p, "target", "name")); tn != "" {
				name = tn
			}
			target := b.find(kind, name)
			if target == nil {
				t.Fatalf("%s: patch %s targets %s %q, which no resource of this kustomization defines", kf, pf, kind, name)
			}
			target.o = k8sMerge(target.o, pd.o).(k8sObj)
			target.file += " + " + pf
		}
	}
	return b
}

// k8sEnvKeys lists the keys of a generator's env file, read from its
// committed .example template.
func k8sEnvKeys(t *testing.T, kf, p string) []string {
	t.Helper()
	f, err := os.Open(p + ".example")
	if err != nil {
		t.Fatalf("%s: secretGenerator env file %s has no committed template %s.example: %v", kf, p, p, err)
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, _ := strings.Cut(line, "=")
		keys = append(keys, k)
	}
	return keys
}

// k8sMerge applies a strategic merge patch, as far as the example needs it:
// maps merge, lists of named maps merge by name, other lists are replaced.
func k8sMerge(dst, patch any) any {
	switch p := patch.(type) {
	case k8sObj:
		d, ok := dst.(k8sObj)
		if !ok {
			return p
		}
		out := k8sObj{}
		for k, v := range d {
			out[k] = v
		}
		for k, v := range p {
			out[k] = k8sMerge(d[k], v)
		}
		return out
	case []any:
		d, ok := dst.([]any)
		if !ok || !k8sNamed(p) || !k8sNamed(d) {
			return p
		}
		out := slices.Clone(d)
	next:
		for _, pv := range p {
			for i, dv := range out {
				if k8sDig(dv, "name") == k8sDig(pv, "name") {
					out[i] = k8sMerge(dv, pv)
					continue next
				}
			}
			out = append(out, pv)
		}
		return out
	}
	return patch
}

func k8sNamed(l []any) bool {
	for _, v := range l {
		if k8sStr(k8sDig(v, "name")) == "" {
			return false
		}
	}
	return len(l) > 0
}

func TestKubernetesBase(t *testing.T) {
	k8sCheckBuild(t, k8sKustomize(t, filepath.Join(k8sDir, "base")))
}

func TestKubernetesOverlayHA(t *testing.T) {
	b := k8sKustomize(t, filepath.Join(k8sDir, "overlays", "ha"))
	k8sCheckBuild(t, b)
	dep := b.find("Deployment", "")
	if r, _ := k8sDig(dep.o, "spec", "replicas").(int); r < 2 {
		t.Errorf("%s: the ha overlay runs %d replica(s); want at least 2", dep, r)
	}
	if len(k8sList(k8sDig(dep.o, "spec", "template", "spec", "topologySpreadConstraints"))) == 0 {
		t.Errorf("%s: the ha overlay has no topologySpreadConstraints", dep)
	}
}

// k8sCheckBuild runs every check on one kustomization's output.
func k8sCheckBuild(t *testing.T, b *k8sBuild) {
	dep := b.find("Deployment", "")
	if dep == nil {
		t.Fatalf("%s: no Deployment", b.dir)
	}
	pod := k8sDig(dep.o, "spec", "template", "spec")
	podLabels, _ := k8sDig(dep.o, "spec", "template", "metadata", "labels").(k8sObj)
	selects := func(what string, sel any) {
		t.Helper()
		m, _ := sel.(k8sObj)
		if len(m) == 0 {
			t.Errorf("%s: empty selector", what)
		}
		for k, v := range m {
			if k8sStr(podLabels[k]) != k8sStr(v) {
				t.Errorf("%s: selector %s=%s does not match the pod labels %v of %s", what, k, k8sStr(v), podLabels, dep)
			}
		}
	}
	selects(dep.String(), k8sDig(dep.o, "spec", "selector", "matchLabels"))

	// Containers: Gatehouse and the app(s) behind it.
	var gh k8sObj
	var apps []k8sObj
	for _, c := range k8sList(k8sDig(pod, "containers")) {
		c := c.(k8sObj)
		if strings.Contains(k8sStr(c["image"]), "gatehouse") {
			gh = c
		} else {
			apps = append(apps, c)
		}
		k8sCheckSecurityContext(t, dep.String(), pod, c)
		for _, kind := range []string{"requests", "limits"} {
			for _, res := range []string{"cpu", "memory"} {
				if k8sStr(k8sDig(c, "resources", kind, res)) == "" {
					t.Errorf("%s: container %s has no resources.%s.%s", dep, c["name"], kind, res)
				}
			}
		}
	}
	if gh == nil || len(apps) == 0 {
		t.Fatalf("%s: want a gatehouse container and the app container beside it", dep)
	}
	ctx := fmt.Sprintf("%s: container %s", dep, gh["name"])

	// The policy: the file named by -c, from a mounted ConfigMap.
	policyPath := k8sFlagValue(k8sList(gh["args"]), "c")
	if policyPath == "" {
		t.Fatalf("%s: args %v do not name a policy with -c", ctx, gh["args"])
	}
	vol, key := k8sMountedFile(pod, gh, policyPath)
	cmName := k8sStr(k8sDig(vol, "configMap", "name"))
	if cmName == "" {
		t.Fatalf("%s: policy %s is not mounted from a ConfigMap", ctx, policyPath)
	}
	cm := b.find("ConfigMap", cmName)
	if cm == nil {
		t.Fatalf("%s: ConfigMap %q (policy volume) is not part of %s", ctx, cmName, b.dir)
	}
	policyYAML := k8sStr(k8sDig(cm.o, "data", key))
	if policyYAML == "" {
		t.Fatalf("%s: has no data key %q, which %s reads as %s", cm, key, ctx, policyPath)
	}

	// Load it with the container's environment: literal values as they
	// are, secret references as dummy values (after checking the Secret
	// and key exist). A ${VAR} without a default that the container does
	// not set fails the load and is reported by name.
	env := map[string]string{}
	for _, e := range k8sList(gh["env"]) {
		name := k8sStr(k8sDig(e, "name"))
		if ref := k8sDig(e, "valueFrom", "secretKeyRef"); ref != nil {
			sn, sk := k8sStr(k8sDig(ref, "name")), k8sStr(k8sDig(ref, "key"))
			keys, ok := b.secrets[sn]
			if !ok && b.find("Secret", sn) == nil {
				t.Errorf("%s: env %s comes from Secret %q, which %s neither defines nor generates", ctx, name, sn, b.dir)
			} else if ok && !slices.Contains(keys, sk) {
				t.Errorf("%s: env %s comes from key %q of Secret %q, which only has %v", ctx, name, sk, sn, keys)
			}
			env[name] = k8sDummy(name)
			continue
		}
		env[name] = k8sStr(k8sDig(e, "value"))
	}
	var missing []string
	lookup := func(name string) (string, bool) {
		v, ok := env[name]
		if !ok && !k8sHasDefault(policyYAML, name) {
			missing = append(missing, name)
		}
		return v, ok
	}
	loaded, err := app.LoadBytes(cm.file+":"+key, []byte(policyYAML), lookup)
	if len(missing) > 0 {
		t.Fatalf("%s: the policy references ${%s} but the container's env does not set it", ctx, strings.Join(missing, "}, ${"))
	}
	if err != nil {
		t.Fatalf("the policy in %s does not load:\n%v", cm, err)
	}
	c := loaded.Config

	// Ports: admin listener <-> probes and scrape annotation, public
	// listener <-> container port and Service.
	adminHost, adminPort := k8sHostPort(t, "server.admin_listen", c.Server.AdminListen)
	if adminPort == "" {
		t.Fatalf("%s: the policy has no server.admin_listen; the probes need it", cm)
	}
	if ip := net.ParseIP(adminHost); adminHost == "localhost" || (ip != nil && ip.IsLoopback()) {
		t.Errorf("%s: server.admin_listen %q is loopback-only: the kubelet probes the pod IP", cm, c.Server.AdminListen)
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		get := k8sDig(gh, probe, "httpGet")
		if get == nil {
			t.Errorf("%s: no %s.httpGet", ctx, probe)
			continue
		}
		if p := k8sStr(k8sDig(get, "path")); p != path {
			t.Errorf("%s: %s path is %q; the admin listener serves %s", ctx, probe, p, path)
		}
		if p := k8sResolvePort(gh, k8sDig(get, "port")); p != adminPort {
			t.Errorf("%s: %s port is %v (%s); server.admin_listen is %q", ctx, probe, k8sDig(get, "port"), p, c.Server.AdminListen)
		}
	}
	ann := k8sDig(dep.o, "spec", "template", "metadata", "annotations")
	if k8sStr(k8sDig(ann, "prometheus.io/scrape")) != "true" || k8sStr(k8sDig(ann, "prometheus.io/port")) != adminPort {
		t.Errorf("%s: prometheus.io/scrape must be \"true\" and prometheus.io/port %q (server.admin_listen), got %q and %q",
			dep, adminPort, k8sStr(k8sDig(ann, "prometheus.io/scrape")), k8sStr(k8sDig(ann, "prometheus.io/port")))
	}
	_, publicPort := k8sHostPort(t, "server.listen", c.Server.Listen)
	var ghPorts []string
	for _, p := range k8sList(gh["ports"]) {
		ghPorts = append(ghPorts, k8sStr(k8sDig(p, "containerPort")))
	}
	if !slices.Contains(ghPorts, publicPort) {
		t.Errorf("%s: container ports %v do not include server.listen's port %s", ctx, ghPorts, publicPort)
	}

	// The app listens on loopback; the route goes there.
	appPorts := map[string]string{} // port -> container
	for _, a := range apps {
		for _, p := range k8sList(a["ports"]) {
			appPorts[k8sStr(k8sDig(p, "containerPort"))] = k8sStr(a["name"])
		}
	}
	for _, r := range c.Routes {
		u, err := url.Parse(r.Upstream)
		if err != nil {
			t.Fatal(err)
		}
		ip := net.ParseIP(u.Hostname())
		if u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			t.Errorf("%s: route %s: upstream %s is not on loopback; the sidecar pattern keeps the app reachable only through the gateway", cm, r.Name, r.Upstream)
		}
		if _, ok := appPorts[u.Port()]; !ok {
			t.Errorf("%s: route %s: upstream port %q is not a port of the app container(s) (%v)", cm, r.Name, u.Port(), appPorts)
		}
	}

	// The Service: Gatehouse's public port only.
	svc := b.find("Service", "")
	if svc == nil {
		t.Fatalf("%s: no Service", b.dir)
	}
	selects(svc.String(), k8sDig(svc.o, "spec", "selector"))
	for _, p := range k8sList(k8sDig(svc.o, "spec", "ports")) {
		tp := k8sDig(p, "targetPort")
		if tp == nil {
			tp = k8sDig(p, "port")
		}
		for _, a := range apps {
			if ap := k8sResolvePort(a, tp); ap != "" {
				t.Errorf("%s: port %s targets %v, port %s of the app container %s: requests would bypass the gateway", svc, k8sStr(k8sDig(p, "name")), tp, ap, a["name"])
			}
		}
		got := k8sResolvePort(gh, tp)
		switch {
		case got == adminPort:
			t.Errorf("%s: port %s exposes the admin listener (%s)", svc, k8sStr(k8sDig(p, "name")), c.Server.AdminListen)
		case got != publicPort:
			t.Errorf("%s: port %s targets %v (%s), not server.listen's port %s", svc, k8sStr(k8sDig(p, "name")), tp, got, publicPort)
		}
	}

	// Files the policy reads come from a mounted Secret that has them.
	files := []string{}
	for _, k := range c.Assertion.Keys {
		files = append(files, k.File)
	}
	names := slices.Sorted(maps.Keys(c.Providers))
	for _, name := range names {
		if s := c.Providers[name].SAML; s != nil {
			files = append(files, s.SPCertFile, s.SPKeyFile)
		}
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		if !filepath.IsAbs(f) {
			t.Errorf("%s: %s is relative to the policy's folder, a ConfigMap; use the absolute path of a mounted Secret", cm, f)
			continue
		}
		vol, key := k8sMountedFile(pod, gh, f)
		sn := k8sStr(k8sDig(vol, "secret", "secretName"))
		keys, ok := b.secrets[sn]
		switch {
		case vol == nil:
			t.Errorf("%s: the policy reads %s, which no volumeMount of the container provides", ctx, f)
		case sn == "":
			t.Errorf("%s: the policy reads %s from volume %s, which is not a Secret", ctx, f, k8sDig(vol, "name"))
		case !ok:
			t.Errorf("%s: volume %s uses Secret %q, which %s does not generate", ctx, k8sDig(vol, "name"), sn, b.dir)
		case !slices.Contains(keys, key):
			t.Errorf("%s: the policy reads %s but Secret %q has no key %q (keys %v)", ctx, f, sn, key, keys)
		}
	}

	// More than one replica needs shared state.
	if r, _ := k8sDig(dep.o, "spec", "replicas").(int); r > 1 && (c.State.RedisURL == "" || c.Session.Store != "server") {
		t.Errorf("%s: %d replicas but state.redis_url is %q and session.store %q: replicas must share state (Redis, session.store: server)",
			dep, r, c.State.RedisURL, c.Session.Store)
	}
	for _, tsc := range k8sList(k8sDig(pod, "topologySpreadConstraints")) {
		selects(dep.String()+" topologySpreadConstraint "+k8sStr(k8sDig(tsc, "topologyKey")), k8sDig(tsc, "labelSelector", "matchLabels"))
	}
	pdb := b.find("PodDisruptionBudget", "")
	if pdb == nil {
		t.Errorf("%s: no PodDisruptionBudget", b.dir)
	} else {
		selects(pdb.String(), k8sDig(pdb.o, "spec", "selector", "matchLabels"))
	}
}

// k8sCheckSecurityContext checks the container's effective security context
// (container settings over pod settings).
func k8sCheckSecurityContext(t *testing.T, where string, pod any, c k8sObj) {
	t.Helper()
	eff := func(path ...string) any {
		if v := k8sDig(c["securityContext"], path...); v != nil {
			return v
		}
		return k8sDig(pod, append([]string{"securityContext"}, path...)...)
	}
	want := []struct {
		path []string
		val  string
	}{
		{[]string{"runAsNonRoot"}, "true"},
		{[]string{"runAsUser"}, "65532"},
		{[]string{"readOnlyRootFilesystem"}, "true"},
		{[]string{"allowPrivilegeEscalation"}, "false"},
		{[]string{"seccompProfile", "type"}, "RuntimeDefault"},
	}
	for _, w := range want {
		var got any
		if w.path[0] == "readOnlyRootFilesystem" || w.path[0] == "allowPrivilegeEscalation" {
			got = k8sDig(c["securityContext"], w.path...) // container-only fields
		} else {
			got = eff(w.path...)
		}
		if k8sStr(got) != w.val {
			t.Errorf("%s: container %s: securityContext.%s is %v; want %s", where, c["name"], strings.Join(w.path, "."), got, w.val)
		}
	}
	if !slices.ContainsFunc(k8sList(k8sDig(c, "securityContext", "capabilities", "drop")), func(v any) bool { return k8sStr(v) == "ALL" }) {
		t.Errorf("%s: container %s: securityContext.capabilities.drop must contain ALL", where, c["name"])
	}
}

// k8sFlagValue returns the value of flag -name (or --name, -name=v).
func k8sFlagValue(args []any, name string) string {
	for i, a := range args {
		s := k8sStr(a)
		for _, f := range []string{"-" + name, "--" + name} {
			if s == f && i+1 < len(args) {
				return k8sStr(args[i+1])
			}
			if v, ok := strings.CutPrefix(s, f+"="); ok {
				return v
			}
		}
	}
	return ""
}

// k8sMountedFile finds the volume providing path in container c, and the key
// (file name) inside it.
func k8sMountedFile(pod any, c k8sObj, path string) (vol k8sObj, key string) {
	for _, m := range k8sList(c["volumeMounts"]) {
		dir := k8sStr(k8sDig(m, "mountPath"))
		rel, err := filepath.Rel(dir, path)
		if err != nil || strings.HasPrefix(rel, "..") || rel == "." {
			continue
		}
		if sp := k8sStr(k8sDig(m, "subPath")); sp != "" {
			continue // a subPath mount is one file, not this folder
		}
		for _, v := range k8sList(k8sDig(pod, "volumes")) {
			if k8sDig(v, "name") == k8sDig(m, "name") {
				return v.(k8sObj), rel
			}
		}
	}
	return nil, ""
}

// k8sResolvePort turns a port number or name into the container's port
// number; "" when the container has no such port.
func k8sResolvePort(c k8sObj, port any) string {
	for _, p := range k8sList(c["ports"]) {
		if k8sStr(k8sDig(p, "name")) == k8sStr(port) || k8sStr(k8sDig(p, "containerPort")) == k8sStr(port) {
			return k8sStr(k8sDig(p, "containerPort"))
		}
	}
	return ""
}

func k8sHostPort(t *testing.T, key, addr string) (string, string) {
	t.Helper()
	if addr == "" {
		return "", ""
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s %q: %v", key, addr, err)
	}
	return h, p
}

// k8sHasDefault reports whether every ${name} in the policy has a default
// (${name:-...}), so that leaving it unset is intended.
func k8sHasDefault(policy, name string) bool {
	return !strings.Contains(policy, "${"+name+"}") && strings.Contains(policy, "${"+name+":-")
}

// k8sDummy is a stand-in for a secret value that passes validation.
func k8sDummy(name string) string {
	if strings.Contains(name, "REDIS") {
		return "rediss://:dummy@redis.example.internal:6379/0"
	}
	return "dummy-" + name + "-0123456789abcdef0123456789abcdef"
}
