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

/// A host whose instances may reserve `instances` times the memory limit
/// together, waiting at most `wait` for room; and that budget.
fn budgeted_host(instances: u64, wait: Duration) -> (PluginHost, Arc<berth::plugin::MemoryBudget>) {
    let budget = berth::plugin::MemoryBudget::new(instances * MEMORY_LIMIT_MIB, wait);
    let options = PluginHostOptions {
        call_timeout: CALL_TIMEOUT,
        memory_limit: MEMORY_LIMIT_MIB << 20,
        budget: budget.clone(),
        ..PluginHostOptions::default()
    };
    let mut host = PluginHost::new(options).expect("plugin host");
    for fixture in ["spin", "hog"] {
        host.add_file(&plugin_wasm(fixture)).expect("fixture");
    }
    (host, budget)
}

/// Sixteen concurrent calls of a guest that allocates to its limit, under a
/// budget of two instances: never more than two instances' memory reserved
/// at once, and every call still ends (at its own memory limit).
#[tokio::test]
async fn concurrent_hogs_stay_within_the_total_budget() {
    let (host, budget) = budgeted_host(2, Duration::from_secs(30));
    let hog = driver(&host, "hog").await;
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let watching = {
        let (budget, peak) = (budget.clone(), peak.clone());
        tokio::spawn(async move {
            loop {
                peak.fetch_max(budget.in_use_mib(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let hog = hog.clone();
            tokio::spawn(async move { hog.stat("/a").await })
        })
        .collect();
    for call in calls {
        let message = plugin_failure(call.await.expect("task"));
        assert!(message.contains("memory limit"), "{message}");
    }
    watching.abort();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    assert!(peak > 0, "the watcher saw no instance");
    assert!(peak <= 2 * MEMORY_LIMIT_MIB, "{peak} MiB reserved at once");
    assert_eq!(budget.in_use_mib(), 0, "every instance gave its share back");
}

/// With the budget held by a call that runs to its deadline, another call
/// waits the bounded time and fails as busy, naming the budget.
#[tokio::test]
async fn a_full_budget_fails_a_call_as_busy_after_a_bounded_wait() {
    let (host, _) = budgeted_host(1, Duration::from_millis(300));
    let spin = driver(&host, "spin").await;
    let hog = driver(&host, "hog").await;
    let spinning = tokio::spawn({
        let spin = spin.clone();
        async move { spin.stat("/a").await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    match hog.stat("/a").await {
        Err(StorageError::Plugin(err)) => {
            assert!(err.busy, "{err}");
            assert!(err.to_string().contains("plugins.totalmemorymib"), "{err}");
        }
        other => panic!("expected a busy plugin, got {other:?}"),
    }
    assert!(started.elapsed() < CALL_TIMEOUT, "waited {:?}", started.elapsed());
    let _ = spinning.await;
}
