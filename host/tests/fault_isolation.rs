//! Misbehaving plugins fail their own calls, in bounded time, with an error
//! that names the plugin and the cause; everything else keeps working.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::plugin::{PluginHost, PluginHostOptions};
use berth::storage::{open_driver, StorageDriver, StorageError};

/// A fixture component the build script built from `plugins/fixtures/`.
fn plugin_wasm(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("BERTH_PLUGIN_BUILD_DIR")).join(format!("{name}.wasm"))
}

const CALL_TIMEOUT: Duration = Duration::from_secs(2);
const MEMORY_LIMIT_MIB: u64 = 64;

fn host() -> PluginHost {
    let options = PluginHostOptions {
        call_timeout: CALL_TIMEOUT,
        memory_limit: MEMORY_LIMIT_MIB << 20,
        ..PluginHostOptions::default()
    };
    let mut host = PluginHost::new(options).expect("plugin host");
    for fixture in ["trap", "spin", "hog", "liar"] {
        host.add_file(&plugin_wasm(fixture)).expect("fixture");
    }
    host
}

async fn driver(host: &PluginHost, name: &str) -> Arc<dyn StorageDriver> {
    open_driver(host, name, Vec::new())
        .await
        .unwrap_or_else(|err| panic!("opening {name}: {err}"))
}

/// The message of a plugin failure; anything else fails the test.
fn plugin_failure<T: std::fmt::Debug>(result: Result<T, StorageError>) -> String {
    match result {
        Err(StorageError::Plugin(err)) => err.to_string(),
        other => panic!("expected a plugin failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_trap_fails_only_that_call_and_says_why() {
    let host = host();
    let trap = driver(&host, "trap").await;
    let message = plugin_failure(trap.stat("/a").await);
    assert!(
        message.contains("plugin `trap`") && message.contains("stat"),
        "{message}"
    );
    assert!(
        message.contains("trapped") && message.contains("fixture trap"),
        "{message}"
    );
    // The next call gets a fresh instance and works.
    assert_eq!(
        trap.list("/a").await.expect("list after a trap"),
        vec!["/a/ok".to_string()]
    );
}

/// On a single-threaded runtime a guest that never returns could starve
/// every other task; it must instead yield, and trap at its deadline.
#[tokio::test(flavor = "current_thread")]
async fn an_endless_loop_hits_the_deadline_while_others_keep_working() {
    let host = host();
    let spin = driver(&host, "spin").await;
    let memory = driver(&host, "inmemory").await;
    let started = Instant::now();
    let spinning = tokio::spawn(async move { spin.stat("/a").await });

    for i in 0..20 {
        let path = format!("/ok/{i}");
        memory
            .put_content(&path, path.as_bytes())
            .await
            .expect("put while a guest spins");
        assert_eq!(
            memory.get_content(&path).await.expect("get while a guest spins"),
            path.as_bytes()
        );
    }
    assert!(!spinning.is_finished(), "the spinning call ended before the others ran");

    let message = plugin_failure(spinning.await.expect("task"));
    assert!(
        message.contains("plugin `spin`") && message.contains("deadline"),
        "{message}"
    );
    assert!(
        started.elapsed() < CALL_TIMEOUT * 10,
        "the deadline was not enforced: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unbounded_allocation_hits_the_memory_limit() {
    let host = host();
    let hog = driver(&host, "hog").await;
    let message = plugin_failure(hog.stat("/a").await);
    assert!(
        message.contains("plugin `hog`") && message.contains(&format!("memory limit of {MEMORY_LIMIT_MIB} MiB")),
        "{message}"
    );
    let memory = driver(&host, "inmemory").await;
    memory
        .put_content("/after", b"fine")
        .await
        .expect("other plugins unaffected");
}

#[tokio::test]
async fn nonsense_answers_are_rejected() {
    let host = host();
    let liar = driver(&host, "liar").await;

    let message = plugin_failure(liar.stat("/a").await);
    assert!(message.contains("impossible size"), "{message}");
    let message = plugin_failure(liar.list("/a").await);
    assert!(message.contains("not a direct child"), "{message}");
    let message = plugin_failure(liar.walk("/a", None, 10).await);
    assert!(message.contains("not a file below /a"), "{message}");

    let mut reader = liar.reader("/a", 0).await.expect("reader");
    let message = plugin_failure(reader.read(16).await);
    assert!(message.contains("when asked for at most 16"), "{message}");

    let mut writer = liar.writer("/a", false).await.expect("writer");
    let message = plugin_failure(writer.write(b"data").await);
    assert!(message.contains("took 0 of 4 bytes"), "{message}");
    let message = plugin_failure(writer.size().await);
    assert!(message.contains("impossible size"), "{message}");
}
