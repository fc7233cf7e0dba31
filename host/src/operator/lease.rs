//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several
//! operator replicas exactly one writes. The holder renews the lease every
//! [`RENEW_EVERY`]; another replica takes it over once it has seen the same
//! record unchanged for the lease's whole duration. Expiry is judged by this
//! process's own clock from when it saw the record change, as client-go
//! does, so clock skew between nodes does not matter. Every write carries the
//! resourceVersion read, so two candidates never both win.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

/// How long a lease lasts without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews it.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How often a standby replica tries to take it.
pub const RETRY_EVERY: Duration = Duration::from_secs(2);

pub struct LeaderLease {
    api: Api<Lease>,
    name: String,
    identity: String,
    /// The record last read (holder, renew time) and when it was first seen.
    seen: Option<(String, Instant)>,
}

impl LeaderLease {
    pub fn new(api: Api<Lease>, name: &str, identity: &str) -> Self {
        LeaderLease {
            api,
            name: name.into(),
            identity: identity.into(),
            seen: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Takes or renews the lease; `Ok(None)` when this process holds it
    /// now, `Ok(Some(holder))` when another one does.
    pub async fn try_acquire(&mut self) -> Result<Option<String>, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now.clone(), now, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(None),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(Some("another replica".into())),
                Err(err) => Err(err),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let record = format!("{holder}/{:?}", spec.renew_time.as_ref().map(|t| t.0));
        let first_seen = match &self.seen {
            Some((seen, at)) if *seen == record => *at,
            _ => Instant::now(),
        };
        self.seen = Some((record, first_seen));
        let duration = spec
            .lease_duration_seconds
            .map_or(LEASE_DURATION, |s| Duration::from_secs(s.max(1) as u64));
        let mine = holder == self.identity;
        let free = holder.is_empty() || first_seen.elapsed() >= duration;
        if !mine && !free {
            return Ok(Some(holder));
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquired = if mine {
            spec.acquire_time.unwrap_or(now.clone())
        } else {
            now.clone()
        };
        lease.spec = Some(self.spec(acquired, now, transitions));
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(None),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Some(holder)),
            Err(err) => Err(err),
        }
    }

    /// Gives the lease up (on shutdown), so a standby takes over at once
    /// rather than after the lease's duration.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }

    fn spec(&self, acquired: MicroTime, renewed: MicroTime, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
            acquire_time: Some(acquired),
            renew_time: Some(renewed),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }
}
