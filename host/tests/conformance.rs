//! The storage-driver conformance suite, run against every bundled driver
//! through the library (`host/tests/cli.rs` runs it through the CLI).

use berth::plugin::{InstanceModel, Origin, PluginHost, PluginHostOptions};
use berth::storage::{conformance, open_driver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bundled_driver_passes_the_suite() {
    let host = PluginHost::new(PluginHostOptions::default()).expect("plugin host");
    // Bundled storage drivers: the bundled configuration validators are not.
    let drivers = host.storage_drivers();
    let bundled: Vec<String> = host
        .plugins()
        .filter(|p| p.origin == Origin::Bundled && drivers.contains(&p.name))
        .map(|p| p.name.clone())
        .collect();
    assert!(
        bundled.contains(&"filesystem".to_string()) && bundled.contains(&"inmemory".to_string()),
        "{bundled:?}"
    );

    for name in bundled {
        let info = host.describe_storage_driver(&name).await.expect("describe");
        if info.network.is_some() {
            continue; // a network driver needs its server: host/tests/s3.rs
        }
        let scratch = tempfile::tempdir().expect("scratch directory");
        let params = match info.directory_parameter {
            Some(key) => vec![(key, scratch.path().display().to_string())],
            None => Vec::new(),
        };
        // A resident driver holds its data in its own memory, under the
        // instance memory limit; the rest get the full 1 GiB stream.
        let large = if info.instance_model == InstanceModel::Resident {
            64 << 20
        } else {
            1 << 30
        };
        let driver = open_driver(&host, &name, params).await.expect("open driver");
        let options = conformance::SuiteOptions {
            large_stream_bytes: large,
        };
        let outcomes = conformance::run(driver, &options, |_| {}).await;
        let failures: Vec<String> = outcomes
            .iter()
            .filter_map(|case| case.result.as_ref().err().map(|why| format!("{}: {why}", case.name)))
            .collect();
        assert!(outcomes.len() >= 30, "{name}: only {} cases ran", outcomes.len());
        assert!(failures.is_empty(), "{name} failed:\n{}", failures.join("\n"));
    }
}
