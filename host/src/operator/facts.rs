//! What the operator reads from the cluster besides the Config, as plain
//! data: the controller fills it in (see `controller.rs`), everything else
//! only reads it, so the builders and checks are testable without a cluster.

use std::collections::BTreeMap;

use super::check::ClusterFacts;

/// The cluster as the operator saw it before a reconcile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// The data of the secret `image-registry-private-configuration-user`,
    /// `None` when it does not exist.
    pub credentials: Option<BTreeMap<String, Vec<u8>>>,
    /// The access modes of the claim `spec.storage.pvc` uses, when it exists.
    pub pvc_access_modes: Option<Vec<String>>,
    /// Whether `route.openshift.io/v1` is served (else Ingresses are made).
    pub routes_served: bool,
    /// Whether `policy/v1` PodDisruptionBudgets are served (else v1beta1).
    pub pdb_v1_served: bool,
    /// TLS secrets that `spec.routes[].secretName` name: (certificate, key).
    pub route_certificates: BTreeMap<String, (String, String)>,
    /// The cluster's cloud, from `config.openshift.io/v1` Infrastructure
    /// `cluster`, when it is served.
    pub infrastructure: Option<Infrastructure>,
}

/// The parts of OpenShift's Infrastructure the defaults use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Infrastructure {
    /// `status.infrastructureName`: the prefix of generated bucket names.
    pub name: String,
    /// `status.platformStatus.aws.region`, when the platform is AWS.
    pub aws_region: Option<String>,
}

impl Facts {
    /// What the validators are told: the credential secret's key names
    /// (never its values) and the claim's access modes.
    pub fn cluster_facts(&self) -> ClusterFacts {
        ClusterFacts {
            secret_keys: self.credentials.iter().flat_map(|data| data.keys().cloned()).collect(),
            pvc_access_modes: self.pvc_access_modes.clone(),
        }
    }

    /// The value of one key of the credentials secret, as text.
    pub fn credential(&self, key: &str) -> Option<String> {
        let value = self.credentials.as_ref()?.get(key)?;
        String::from_utf8(value.clone()).ok()
    }
}
