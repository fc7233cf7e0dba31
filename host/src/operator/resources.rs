//! Pure builders of the objects the operator owns: from a Config, the
//! registry environment mapped from its spec and the cluster facts, the
//! JSON of each object as it is server-side applied. Names are OpenShift's,
//! so tooling that looks for `image-registry` finds it.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::config::{Config, RolloutStrategy, API_VERSION, KIND};
use super::facts::Facts;
use super::mapping::{EnvValue, RegistryEnv, STORAGE_ROOT};

/// The Deployment, Service and PodDisruptionBudget of the registry.
pub const REGISTRY: &str = "image-registry";
/// The operator's copy of the storage credentials the pods read.
pub const PRIVATE_SECRET: &str = "image-registry-private-configuration";
/// The registry pods' service account.
pub const SERVICE_ACCOUNT: &str = "registry";
/// The registry's ClusterRole and ClusterRoleBinding are this, a colon and
/// the namespace: cluster-scoped names of one installation must not be
/// another's.
pub const CLUSTER_ROLE_PREFIX: &str = "berth:image-registry";
/// The Route (or Ingress) `spec.defaultRoute` asks for.
pub const DEFAULT_ROUTE: &str = "default-route";
/// The claim `spec.storage.pvc` uses when it names none.
pub const DEFAULT_CLAIM: &str = "image-registry-storage";
/// The registry's port, in the pod and on the Service.
pub const PORT: u16 = 5000;
/// The metrics' port (`http.debug.addr`), in the pod and on the Service,
/// where the pods' `prometheus.io/*` annotations point scrapers.
pub const METRICS_PORT: u16 = 5001;
/// The label every owned object carries, with [`INSTANCE`]; [`owned_selector`]
/// finds them.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "berth-operator");
/// The label naming the installation (its namespace), which tells one
/// installation's cluster-scoped objects from another's.
pub const INSTANCE: &str = "app.kubernetes.io/instance";
/// The pod template annotation holding [`dependencies_checksum`]: a changed
/// secret changes the template, which rolls the pods.
pub const CHECKSUM_ANNOTATION: &str = "imageregistry.operator.openshift.io/dependencies-checksum";
const VOLUME: &str = "registry-storage";

/// What the objects are built from.
pub struct Inputs<'a> {
    pub config: &'a Config,
    pub env: &'a RegistryEnv,
    pub facts: &'a Facts,
    /// The image the registry pods run (`berth`, which serves both roles).
    pub image: &'a str,
    pub namespace: &'a str,
}

/// An object's identity: enough to get or delete it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// The identity of an object's JSON.
    pub fn of(object: &Value) -> ObjectRef {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        ObjectRef {
            api_version: text(&object["apiVersion"]),
            kind: text(&object["kind"]),
            namespace: object["metadata"]["namespace"].as_str().map(str::to_string),
            name: text(&object["metadata"]["name"]),
        }
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// The labels of the objects owned by the installation in `namespace`.
pub fn owned_selector(namespace: &str) -> String {
    format!("{}={},{INSTANCE}={namespace}", MANAGED_BY.0, MANAGED_BY.1)
}

/// The name of the registry's ClusterRole and ClusterRoleBinding.
pub fn cluster_role_name(namespace: &str) -> String {
    format!("{CLUSTER_ROLE_PREFIX}:{namespace}")
}

/// The kinds the operator may own, for listing what exists: (apiVersion,
/// kind, namespaced). Routes and PDBs appear under the versions served.
pub fn owned_kinds(facts: &Facts) -> Vec<(&'static str, &'static str, bool)> {
    let mut kinds = vec![
        ("v1", "ServiceAccount", true),
        ("v1", "Secret", true),
        ("v1", "Service", true),
        ("apps/v1", "Deployment", true),
        ("rbac.authorization.k8s.io/v1", "ClusterRole", false),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", false),
        (pdb_api_version(facts), "PodDisruptionBudget", true),
    ];
    kinds.push(if facts.routes_served {
        ("route.openshift.io/v1", "Route", true)
    } else {
        ("networking.k8s.io/v1", "Ingress", true)
    });
    kinds
}

/// Every object the Config asks for, in the order to apply them (what a
/// Deployment refers to exists before it).
pub fn build(inputs: &Inputs) -> Vec<Value> {
    let mut objects = vec![
        service_account(inputs),
        cluster_role(inputs),
        cluster_role_binding(inputs),
        private_secret(inputs),
        service(inputs),
        deployment(inputs),
        pod_disruption_budget(inputs),
    ];
    objects.extend(routes(inputs));
    objects
}

/// The sha256 of every secret value the pods read, by key; a change to the
/// credentials secret changes it.
pub fn dependencies_checksum(facts: &Facts) -> String {
    let mut hash = Sha256::new();
    for (key, value) in private_data(facts) {
        hash.update((key.len() as u64).to_be_bytes());
        hash.update(key.as_bytes());
        hash.update((value.len() as u64).to_be_bytes());
        hash.update(value);
    }
    format!("sha256:{}", hex::encode(hash.finalize()))
}

/// The keys of the credentials secret the pods get: those the mapped
/// environment refers to.
fn private_data(facts: &Facts) -> BTreeMap<&str, &[u8]> {
    facts
        .credentials
        .iter()
        .flatten()
        .filter(|(key, _)| [super::mapping::S3_ACCESS_KEY, super::mapping::S3_SECRET_KEY].contains(&key.as_str()))
        .map(|(key, value)| (key.as_str(), value.as_slice()))
        .collect()
}

fn metadata(inputs: &Inputs, name: &str, namespaced: bool) -> Value {
    let config = inputs.config;
    let mut meta = json!({
        "name": name,
        "labels": labels(inputs.namespace),
        "ownerReferences": [{
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": config.metadata.name.clone().unwrap_or_default(),
            "uid": config.metadata.uid.clone().unwrap_or_default(),
            "controller": true,
        }],
    });
    if namespaced {
        meta["namespace"] = inputs.namespace.into();
    }
    meta
}

fn labels(namespace: &str) -> Value {
    json!({
        "docker-registry": "default",
        "app.kubernetes.io/name": REGISTRY,
        MANAGED_BY.0: MANAGED_BY.1,
        INSTANCE: namespace,
    })
}

fn service_account(inputs: &Inputs) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(inputs, SERVICE_ACCOUNT, true),
    })
}

/// The registry makes no Kubernetes API calls: its role grants nothing. It
/// is where the registry's RBAC lives once it does (token reviews for access
/// control), bound to its service account.
fn cluster_role(inputs: &Inputs) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": metadata(inputs, &cluster_role_name(inputs.namespace), false),
        "rules": [],
    })
}

fn cluster_role_binding(inputs: &Inputs) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": metadata(inputs, &cluster_role_name(inputs.namespace), false),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role_name(inputs.namespace)},
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": inputs.namespace}],
    })
}

fn private_secret(inputs: &Inputs) -> Value {
    let data: serde_json::Map<String, Value> = private_data(inputs.facts)
        .into_iter()
        .map(|(key, value)| {
            (
                key.to_string(),
                base64::engine::general_purpose::STANDARD.encode(value).into(),
            )
        })
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(inputs, PRIVATE_SECRET, true),
        "type": "Opaque",
        "data": data,
    })
}

fn service(inputs: &Inputs) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(inputs, REGISTRY, true),
        "spec": {
            "type": "ClusterIP",
            "selector": {"docker-registry": "default"},
            // Server-side apply of a port needs its protocol spelt out.
            "ports": [
                {"name": format!("{PORT}-tcp"), "port": PORT, "protocol": "TCP", "targetPort": PORT},
                {"name": "metrics", "port": METRICS_PORT, "protocol": "TCP", "targetPort": METRICS_PORT},
            ],
        },
    })
}

fn deployment(inputs: &Inputs) -> Value {
    let spec = &inputs.config.spec;
    let env: Vec<Value> = inputs
        .env
        .vars
        .iter()
        .map(|var| match &var.value {
            EnvValue::Literal(value) => json!({"name": var.name, "value": value}),
            EnvValue::Secret { key, .. } => json!({
                "name": var.name,
                "valueFrom": {"secretKeyRef": {"name": PRIVATE_SECRET, "key": key}},
            }),
        })
        .collect();
    let probe = |period: u32| {
        json!({
            "httpGet": {"path": "/healthz", "port": PORT, "scheme": "HTTP"},
            "initialDelaySeconds": 5,
            "periodSeconds": period,
            "timeoutSeconds": 5,
        })
    };
    let mut container = json!({
        "name": "registry",
        "image": inputs.image,
        "args": ["serve"],
        "ports": [
            {"containerPort": PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "env": env,
        "livenessProbe": probe(10),
        "readinessProbe": probe(5),
        "resources": spec.resources.clone().unwrap_or_else(|| json!({"requests": {"cpu": "100m", "memory": "256Mi"}})),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    });
    let mut pod = json!({
        "serviceAccountName": SERVICE_ACCOUNT,
        "containers": [],
    });
    if let Some(volume) = storage_volume(inputs.config) {
        container["volumeMounts"] = json!([{"name": VOLUME, "mountPath": STORAGE_ROOT}]);
        pod["volumes"] = json!([volume]);
    }
    pod["containers"] = json!([container]);
    if !spec.node_selector.is_empty() {
        pod["nodeSelector"] = json!(spec.node_selector);
    }
    if !spec.tolerations.is_empty() {
        pod["tolerations"] = json!(spec.tolerations);
    }
    if let Some(affinity) = &spec.affinity {
        pod["affinity"] = affinity.clone();
    }
    if !spec.topology_spread_constraints.is_empty() {
        pod["topologySpreadConstraints"] = json!(spec.topology_spread_constraints);
    }
    // The rolling update's parameters are spelt out so that they are this
    // field manager's: switching to Recreate then removes them, where
    // server-defaulted ones would stay and make the Deployment invalid.
    let strategy = match spec.rollout_strategy.as_deref().and_then(RolloutStrategy::parse) {
        Some(RolloutStrategy::Recreate) => json!({"type": "Recreate"}),
        _ => json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
    };
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(inputs, REGISTRY, true),
        "spec": {
            "replicas": spec.replicas(),
            "selector": {"matchLabels": {"docker-registry": "default"}},
            "strategy": strategy,
            "template": {
                "metadata": {
                    "labels": labels(inputs.namespace),
                    "annotations": {
                        CHECKSUM_ANNOTATION: dependencies_checksum(inputs.facts),
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": METRICS_PORT.to_string(),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": pod,
            },
        },
    })
}

/// The volume behind `/registry` for emptyDir and PVC storage.
fn storage_volume(config: &Config) -> Option<Value> {
    let storage = &config.spec.storage;
    if storage.empty_dir.is_some() {
        return Some(json!({"name": VOLUME, "emptyDir": {}}));
    }
    let pvc = storage.pvc.as_ref()?;
    let claim = pvc.claim.as_deref().filter(|c| !c.is_empty()).unwrap_or(DEFAULT_CLAIM);
    Some(json!({"name": VOLUME, "persistentVolumeClaim": {"claimName": claim}}))
}

fn pdb_api_version(facts: &Facts) -> &'static str {
    if facts.pdb_v1_served {
        "policy/v1"
    } else {
        "policy/v1beta1"
    }
}

/// At most one registry pod down at a time for voluntary disruptions (node
/// drains); with a single replica that still lets a drain proceed.
fn pod_disruption_budget(inputs: &Inputs) -> Value {
    json!({
        "apiVersion": pdb_api_version(inputs.facts),
        "kind": "PodDisruptionBudget",
        "metadata": metadata(inputs, REGISTRY, true),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": {"docker-registry": "default"}},
        },
    })
}

/// `defaultRoute` and `routes[]`: Routes where `route.openshift.io` is
/// served, else Ingresses, edge-terminated at the router.
fn routes(inputs: &Inputs) -> Vec<Value> {
    let spec = &inputs.config.spec;
    let mut wanted: Vec<(String, Option<String>, Option<String>)> = Vec::new();
    if spec.default_route {
        wanted.push((DEFAULT_ROUTE.into(), None, None));
    }
    for route in &spec.routes {
        wanted.push((route.name.clone(), route.hostname.clone(), route.secret_name.clone()));
    }
    wanted
        .into_iter()
        .map(|(name, host, secret)| {
            let host = host.filter(|h| !h.is_empty());
            let secret = secret.filter(|s| !s.is_empty());
            if inputs.facts.routes_served {
                route(inputs, &name, host, secret)
            } else {
                ingress(inputs, &name, host, secret)
            }
        })
        .collect()
}

fn route(inputs: &Inputs, name: &str, host: Option<String>, secret: Option<String>) -> Value {
    let mut tls = json!({"termination": "edge", "insecureEdgeTerminationPolicy": "Redirect"});
    if let Some(secret) = secret {
        // A Route carries its certificate inline: copied from the secret.
        if let Some((cert, key)) = inputs.facts.route_certificates.get(&secret) {
            tls["certificate"] = cert.as_str().into();
            tls["key"] = key.as_str().into();
        }
    }
    let mut spec = json!({
        "to": {"kind": "Service", "name": REGISTRY, "weight": 100},
        "port": {"targetPort": format!("{PORT}-tcp")},
        "tls": tls,
    });
    if let Some(host) = host {
        spec["host"] = host.into();
    }
    json!({
        "apiVersion": "route.openshift.io/v1",
        "kind": "Route",
        "metadata": metadata(inputs, name, true),
        "spec": spec,
    })
}

fn ingress(inputs: &Inputs, name: &str, host: Option<String>, secret: Option<String>) -> Value {
    let backend = json!({"service": {"name": REGISTRY, "port": {"number": PORT}}});
    let mut rule = json!({"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}});
    let mut spec = json!({});
    if let Some(host) = &host {
        rule["host"] = host.as_str().into();
    }
    if let Some(secret) = secret {
        let mut tls = json!({"secretName": secret});
        if let Some(host) = &host {
            tls["hosts"] = json!([host]);
        }
        spec["tls"] = json!([tls]);
    }
    spec["rules"] = json!([rule]);
    let mut meta = metadata(inputs, name, true);
    // Registry pushes carry large bodies: no proxy limit on them.
    meta["annotations"] = json!({"nginx.ingress.kubernetes.io/proxy-body-size": "0"});
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta,
        "spec": spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::mapping::{registry_env, S3_ACCESS_KEY, S3_SECRET_KEY};

    fn config(spec: Value) -> Config {
        serde_json::from_value(json!({
            "metadata": {"name": "cluster", "uid": "u-1"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn build_for(config: &Config, facts: &Facts) -> Vec<Value> {
        let keys = facts.cluster_facts().secret_keys;
        let env = registry_env(&config.spec, &keys).unwrap();
        build(&Inputs {
            config,
            env: &env,
            facts,
            image: "img:1",
            namespace: "ns",
        })
    }

    fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    }

    fn credentials(secret: &str) -> Facts {
        Facts {
            credentials: Some(BTreeMap::from([
                (S3_ACCESS_KEY.to_string(), b"AK".to_vec()),
                (S3_SECRET_KEY.to_string(), secret.as_bytes().to_vec()),
                ("unrelated".to_string(), b"x".to_vec()),
            ])),
            ..Facts::default()
        }
    }

    #[test]
    fn every_object_is_labelled_and_owned() {
        let objects = build_for(&config(json!({"storage": {"emptyDir": {}}})), &Facts::default());
        let kinds: Vec<&str> = objects.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Secret",
                "Service",
                "Deployment",
                "PodDisruptionBudget"
            ]
        );
        for object in &objects {
            let meta = &object["metadata"];
            assert_eq!(meta["labels"][MANAGED_BY.0], MANAGED_BY.1);
            assert_eq!(meta["labels"][INSTANCE], "ns");
            assert_eq!(meta["ownerReferences"][0]["uid"], "u-1");
            assert_eq!(meta["ownerReferences"][0]["kind"], "Config");
            let cluster_scoped = object["kind"].as_str().unwrap().starts_with("Cluster");
            assert_eq!(meta["namespace"].is_null(), cluster_scoped, "{object}");
        }
        let binding = find(&objects, "ClusterRoleBinding", "berth:image-registry:ns");
        assert_eq!(
            binding["subjects"][0],
            json!({"kind": "ServiceAccount", "name": "registry", "namespace": "ns"})
        );
        assert_eq!(
            find(&objects, "PodDisruptionBudget", REGISTRY)["apiVersion"],
            "policy/v1beta1"
        );
    }

    #[test]
    fn scheduling_fields_reach_the_pod() {
        let spec = json!({
            "storage": {"pvc": {"claim": "data"}}, "replicas": 3, "rolloutStrategy": "Recreate",
            "nodeSelector": {"disk": "ssd"},
            "tolerations": [{"key": "k", "operator": "Exists"}],
            "affinity": {"podAntiAffinity": {"x": 1}},
            "topologySpreadConstraints": [{"maxSkew": 1}],
            "resources": {"limits": {"memory": "2Gi"}},
        });
        let objects = build_for(&config(spec), &Facts::default());
        let deployment = find(&objects, "Deployment", REGISTRY);
        assert_eq!(deployment["spec"]["replicas"], 3);
        assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["nodeSelector"], json!({"disk": "ssd"}));
        assert_eq!(pod["tolerations"], json!([{"key": "k", "operator": "Exists"}]));
        assert_eq!(pod["affinity"], json!({"podAntiAffinity": {"x": 1}}));
        assert_eq!(pod["topologySpreadConstraints"], json!([{"maxSkew": 1}]));
        assert_eq!(pod["containers"][0]["resources"], json!({"limits": {"memory": "2Gi"}}));
        assert_eq!(pod["volumes"][0]["persistentVolumeClaim"]["claimName"], "data");
        let default_claim = build_for(&config(json!({"storage": {"pvc": {}}})), &Facts::default());
        assert_eq!(
            find(&default_claim, "Deployment", REGISTRY)["spec"]["template"]["spec"]["volumes"][0]
                ["persistentVolumeClaim"]["claimName"],
            DEFAULT_CLAIM
        );
        let defaults = build_for(&config(json!({"storage": {"emptyDir": {}}})), &Facts::default());
        let plain = find(&defaults, "Deployment", REGISTRY);
        assert_eq!(plain["spec"]["strategy"]["type"], "RollingUpdate");
        assert!(plain["spec"]["template"]["spec"]["nodeSelector"].is_null());
    }

    #[test]
    fn s3_credentials_come_from_the_private_secret_and_roll_the_pods() {
        let spec = json!({"storage": {"s3": {"bucket": "b", "region": "r"}}});
        let facts = credentials("one");
        let objects = build_for(&config(spec.clone()), &facts);
        let secret = find(&objects, "Secret", PRIVATE_SECRET);
        assert_eq!(
            secret["data"],
            json!({S3_ACCESS_KEY: "QUs=", S3_SECRET_KEY: "b25l"}),
            "only the keys the pods read"
        );
        let deployment = find(&objects, "Deployment", REGISTRY);
        let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap();
        let access = env.iter().find(|v| v["name"] == S3_ACCESS_KEY).unwrap();
        assert_eq!(
            access["valueFrom"]["secretKeyRef"],
            json!({"name": PRIVATE_SECRET, "key": S3_ACCESS_KEY})
        );
        assert!(
            deployment["spec"]["template"]["spec"]["volumes"].is_null(),
            "S3 needs no volume"
        );
        let annotation = |facts: &Facts| {
            find(&build_for(&config(spec.clone()), facts), "Deployment", REGISTRY)["spec"]["template"]["metadata"]
                ["annotations"][CHECKSUM_ANNOTATION]
                .clone()
        };
        assert_eq!(annotation(&facts), annotation(&credentials("one")));
        assert_ne!(annotation(&facts), annotation(&credentials("two")));
        let mut unrelated = credentials("one");
        unrelated
            .credentials
            .as_mut()
            .unwrap()
            .insert("unrelated".into(), b"y".to_vec());
        assert_eq!(
            annotation(&facts),
            annotation(&unrelated),
            "only keys the pods read count"
        );
    }

    #[test]
    fn routes_or_ingresses() {
        let spec = json!({
            "storage": {"emptyDir": {}}, "defaultRoute": true,
            "routes": [{"name": "public", "hostname": "registry.example.com", "secretName": "tls"}],
        });
        let ingresses = build_for(&config(spec.clone()), &Facts::default());
        let default = find(&ingresses, "Ingress", DEFAULT_ROUTE);
        assert_eq!(
            default["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["number"],
            5000
        );
        assert!(default["spec"]["tls"].is_null());
        let public = find(&ingresses, "Ingress", "public");
        assert_eq!(public["spec"]["rules"][0]["host"], "registry.example.com");
        assert_eq!(
            public["spec"]["tls"][0],
            json!({"secretName": "tls", "hosts": ["registry.example.com"]})
        );

        let openshift = Facts {
            routes_served: true,
            pdb_v1_served: true,
            route_certificates: BTreeMap::from([("tls".to_string(), ("CERT".to_string(), "KEY".to_string()))]),
            ..Facts::default()
        };
        let routes = build_for(&config(spec), &openshift);
        let public = find(&routes, "Route", "public");
        assert_eq!(public["spec"]["host"], "registry.example.com");
        assert_eq!(public["spec"]["tls"]["certificate"], "CERT");
        assert_eq!(public["spec"]["to"]["name"], REGISTRY);
        assert!(find(&routes, "Route", DEFAULT_ROUTE)["spec"]["host"].is_null());
        assert_eq!(
            find(&routes, "PodDisruptionBudget", REGISTRY)["apiVersion"],
            "policy/v1"
        );
        assert!(owned_kinds(&openshift).contains(&("route.openshift.io/v1", "Route", true)));
    }
}
