//! The process's Prometheus metrics: counted always (atomic adds, cheap),
//! exported on `http.debug.addr` when `http.debug.prometheus.enabled`. One
//! set per process, as Prometheus scrapes a process.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// What the exposition is sent as.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    plugin: String,
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    plugin: String,
    cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// 0.5 ms to about 16 s, doubling: a manifest GET to a large blob's pull.
fn request_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// 10 us to about 10 s, doubling four times a decade: a resident call to a
/// part upload to S3.
fn call_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.00001, 4.0, 11))
}

/// Why a plugin call failed, as the `cause` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCause {
    Trap,
    Deadline,
    MemoryLimit,
    /// It answered something the contract rules out.
    Contract,
    /// Anything else the runtime reported (instantiation, a host error).
    Other,
}

impl FailureCause {
    fn label(self) -> &'static str {
        match self {
            FailureCause::Trap => "trap",
            FailureCause::Deadline => "deadline",
            FailureCause::MemoryLimit => "memory_limit",
            FailureCause::Contract => "contract_violation",
            FailureCause::Other => "other",
        }
    }
}

/// Every metric the process keeps.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Histograms<RouteLabels>,
    bytes_sent: Family<RouteLabels, Counter>,
    bytes_received: Family<RouteLabels, Counter>,
    uploads: Family<OutcomeLabels, Counter>,
    limited_running: Family<LimitLabels, Gauge>,
    limited_waiting: Family<LimitLabels, Gauge>,
    plugin_calls: Family<CallLabels, Counter>,
    plugin_call_seconds: Histograms<CallLabels>,
    plugin_failures: Family<FailureLabels, Counter>,
    plugin_instances: Family<PluginLabels, Counter>,
    gc_runs: Family<OutcomeLabels, Counter>,
    gc_deleted: Family<DeletedLabels, Counter>,
    gc_deleted_bytes: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeletedLabels {
    kind: &'static str,
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("berth");
        let requests = Family::default();
        registry.register(
            "http_requests",
            "Registry API requests answered, by method, route and status",
            requests.clone(),
        );
        let request_seconds = Histograms::new_with_constructor(request_buckets as fn() -> Histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response's end, by method and route",
            request_seconds.clone(),
        );
        let bytes_sent = Family::default();
        registry.register(
            "http_response_bytes",
            "Response body bytes sent, by method and route",
            bytes_sent.clone(),
        );
        let bytes_received = Family::default();
        registry.register(
            "http_request_bytes",
            "Request body bytes received, by method and route",
            bytes_received.clone(),
        );
        let uploads = Family::default();
        registry.register(
            "blob_uploads",
            "Blob upload requests, by outcome: started, completed (a blob committed) or failed",
            uploads.clone(),
        );
        let limited_running = Family::default();
        registry.register(
            "limited_requests_running",
            "Requests running under a requests.read or requests.write limit, by kind",
            limited_running.clone(),
        );
        let limited_waiting = Family::default();
        registry.register(
            "limited_requests_waiting",
            "Requests waiting in the queue of a requests.read or requests.write limit, by kind",
            limited_waiting.clone(),
        );
        let plugin_calls = Family::default();
        registry.register(
            "plugin_calls",
            "Calls into storage-driver plugins, by plugin and operation",
            plugin_calls.clone(),
        );
        let plugin_call_seconds = Histograms::new_with_constructor(call_buckets as fn() -> Histogram);
        registry.register(
            "plugin_call_duration_seconds",
            "Time of calls into storage-driver plugins, by plugin and operation",
            plugin_call_seconds.clone(),
        );
        let plugin_failures = Family::default();
        registry.register(
            "plugin_failures",
            "Plugin calls that failed, by plugin and cause: trap, deadline, memory_limit, contract_violation, other",
            plugin_failures.clone(),
        );
        let plugin_instances = Family::default();
        registry.register(
            "plugin_instances_created",
            "Storage-driver plugin instances created, by plugin",
            plugin_instances.clone(),
        );
        let gc_runs = Family::default();
        registry.register(
            "gc_runs",
            "Garbage collection runs in this process (storage.gc), by outcome: completed, failed, or skipped (another process held the lease)",
            gc_runs.clone(),
        );
        let gc_deleted = Family::default();
        registry.register(
            "gc_deleted",
            "What garbage collection in this process deleted, by kind: tag, manifest, link, blob",
            gc_deleted.clone(),
        );
        let gc_deleted_bytes = Counter::default();
        registry.register(
            "gc_deleted_bytes",
            "Bytes of blob data garbage collection in this process deleted",
            gc_deleted_bytes.clone(),
        );
        Metrics {
            registry,
            gc_runs,
            gc_deleted,
            gc_deleted_bytes,
            requests,
            request_seconds,
            bytes_sent,
            bytes_received,
            uploads,
            limited_running,
            limited_waiting,
            plugin_calls,
            plugin_call_seconds,
            plugin_failures,
            plugin_instances,
        }
    }

    /// One request answered: `route` is the route's name, not the path, so
    /// that the label has few values.
    pub fn request(&self, method: &str, route: &'static str, status: u16, took: Duration, sent: u64) {
        let method = method.to_string();
        self.requests
            .get_or_create(&RequestLabels {
                method: method.clone(),
                route,
                status,
            })
            .inc();
        let labels = RouteLabels { method, route };
        self.request_seconds.get_or_create(&labels).observe(took.as_secs_f64());
        self.bytes_sent.get_or_create(&labels).inc_by(sent);
    }

    /// The counter of request body bytes received on `route`, to add to as
    /// the body arrives.
    pub fn received(&self, method: &str, route: &'static str) -> Counter {
        let labels = RouteLabels {
            method: method.to_string(),
            route,
        };
        self.bytes_received.get_or_create(&labels).clone()
    }

    /// A garbage collection run ended: `completed`, `failed` or `skipped`.
    pub fn gc_run(&self, outcome: &'static str) {
        self.gc_runs.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// A run deleted `count` things of `kind` (`tag`, `manifest`, `link`,
    /// `blob`), and `bytes` of blob data.
    pub fn gc_deleted(&self, kind: &'static str, count: u64, bytes: u64) {
        self.gc_deleted.get_or_create(&DeletedLabels { kind }).inc_by(count);
        self.gc_deleted_bytes.inc_by(bytes);
    }

    /// `outcome`: `started`, `completed` or `failed`.
    pub fn upload(&self, outcome: &'static str) {
        self.uploads.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// The gauges of requests running and waiting under the `kind` limit.
    pub fn limited(&self, kind: &'static str) -> (Gauge, Gauge) {
        let labels = LimitLabels { kind };
        (
            self.limited_running.get_or_create(&labels).clone(),
            self.limited_waiting.get_or_create(&labels).clone(),
        )
    }

    pub fn plugin_call(&self, plugin: &str, operation: &'static str, took: Duration) {
        let labels = CallLabels {
            plugin: plugin.to_string(),
            operation,
        };
        self.plugin_calls.get_or_create(&labels).inc();
        self.plugin_call_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    pub fn plugin_failure(&self, plugin: &str, cause: FailureCause) {
        let labels = FailureLabels {
            plugin: plugin.to_string(),
            cause: cause.label(),
        };
        self.plugin_failures.get_or_create(&labels).inc();
    }

    pub fn plugin_instance(&self, plugin: &str) {
        let labels = PluginLabels {
            plugin: plugin.to_string(),
        };
        self.plugin_instances.get_or_create(&labels).inc();
    }

    /// The exposition, in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_counted_is_exposed_with_its_labels() {
        let metrics = Metrics::new();
        metrics.request("GET", "blob", 200, Duration::from_millis(3), 1024);
        metrics.request("GET", "blob", 200, Duration::from_millis(5), 1024);
        metrics.upload("completed");
        metrics.plugin_call("filesystem", "stat", Duration::from_micros(20));
        metrics.plugin_failure("s3", FailureCause::Deadline);
        let text = metrics.encode();
        for line in [
            r#"berth_http_requests_total{method="GET",route="blob",status="200"} 2"#,
            r#"berth_http_response_bytes_total{method="GET",route="blob"} 2048"#,
            r#"berth_http_request_duration_seconds_count{method="GET",route="blob"} 2"#,
            r#"berth_blob_uploads_total{outcome="completed"} 1"#,
            r#"berth_plugin_calls_total{plugin="filesystem",operation="stat"} 1"#,
            r#"berth_plugin_failures_total{plugin="s3",cause="deadline"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
