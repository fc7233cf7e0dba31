//! `berth plugin test | inspect | list`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::plugin::{InstanceModel, Origin, PluginHost, PluginHostOptions};
use crate::storage::{conformance, open_driver_reading, ReadPath};

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Run the storage-driver conformance suite against a plugin.
    Test {
        /// A bundled or dropped-in plugin name, or a path to a `.wasm` file.
        plugin: String,
        /// A driver parameter, as in `storage: {NAME: {KEY: VALUE}}`.
        #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Size of the large-stream case, MiB. Default: 1024, or 64 for
        /// drivers that keep their data in their own memory.
        #[arg(long, value_name = "MIB")]
        large_stream_mib: Option<u64>,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Show the world, exports, imports, size and sha256 of a plugin.
    Inspect {
        /// A bundled or dropped-in plugin name, or a path to a `.wasm` file.
        plugin: String,
        #[command(flatten)]
        host: HostArgs,
    },
    /// List the bundled and dropped-in plugins.
    List {
        #[command(flatten)]
        host: HostArgs,
    },
}

/// Settings of the plugin host.
#[derive(Args)]
pub struct HostArgs {
    /// Directory of drop-in `.wasm` plugins (they add to or replace bundled ones).
    #[arg(long, env = "BERTH_PLUGIN_DIR")]
    plugin_dir: Option<PathBuf>,
    /// Longest time one plugin call may take, in seconds.
    #[arg(long, default_value_t = 30)]
    call_timeout_secs: u64,
    /// Most memory one plugin instance may use, in MiB.
    #[arg(long, default_value_t = 256)]
    memory_limit_mib: u64,
}

impl HostArgs {
    fn start(&self) -> anyhow::Result<PluginHost> {
        let options = PluginHostOptions {
            call_timeout: Duration::from_secs(self.call_timeout_secs),
            memory_limit: self.memory_limit_mib << 20,
            plugin_dir: self.plugin_dir.clone(),
            ..PluginHostOptions::default()
        };
        PluginHost::new(options)
    }
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))?;
    Ok((key.to_string(), value.to_string()))
}

pub async fn run(command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::Test {
            plugin,
            params,
            large_stream_mib,
            host,
        } => test(&plugin, params, large_stream_mib, &host).await,
        PluginCommand::Inspect { plugin, host } => inspect(&plugin, &host),
        PluginCommand::List { host } => list(&host),
    }
}

/// A name, or a file that is added to the host under its stem.
fn resolve(host: &mut PluginHost, plugin: &str) -> anyhow::Result<String> {
    let path = Path::new(plugin);
    if plugin.ends_with(".wasm") || path.is_file() {
        host.add_file(path)
    } else {
        Ok(plugin.to_string())
    }
}

async fn test(
    plugin: &str,
    mut params: Vec<(String, String)>,
    large_stream_mib: Option<u64>,
    args: &HostArgs,
) -> anyhow::Result<ExitCode> {
    let mut host = args.start()?;
    let name = resolve(&mut host, plugin)?;
    let info = host.describe_storage_driver(&name).await?;
    // A driver that stores into a directory gets a fresh temporary one
    // unless the command line names one.
    let scratch = match &info.directory_parameter {
        Some(key) if !params.iter().any(|(k, _)| k == key) => {
            let dir = tempfile::Builder::new()
                .prefix("berth-plugin-test-")
                .tempdir()
                .context("creating a scratch directory")?;
            params.push((key.clone(), dir.path().display().to_string()));
            Some(dir)
        }
        _ => None,
    };
    let resident = info.instance_model == InstanceModel::Resident;
    let large_mib = large_stream_mib.unwrap_or(if resident { 64 } else { 1024 });
    // A driver that names its files or signs its reads is read that way, as
    // the registry reads it; then once more through its own reader, which
    // is part of the contract too.
    let inspection = host.inspect(&name)?;
    let direct = if inspection.names_local_files {
        ", reading the files it names"
    } else {
        ", sending the GETs it signs"
    };
    let read_paths = if inspection.reads_directly() {
        vec![
            (ReadPath::Direct, direct),
            (ReadPath::PluginReader, ", reading through its reader"),
        ]
    } else {
        vec![(ReadPath::Direct, "")]
    };
    let (mut passed, mut failed) = (0, 0);
    for (read_path, how) in read_paths {
        let driver = open_driver_reading(&host, &name, params.clone(), read_path).await?;
        println!("conformance suite: plugin {name}, large stream {large_mib} MiB{how}");
        let options = conformance::SuiteOptions {
            large_stream_bytes: large_mib << 20,
        };
        let outcomes = conformance::run(driver, &options, |case| match &case.result {
            Ok(()) => println!("ok    {} ({:.2}s)", case.name, case.elapsed.as_secs_f64()),
            Err(why) => println!("FAIL  {} ({:.2}s): {why}", case.name, case.elapsed.as_secs_f64()),
        })
        .await;
        let failures = outcomes.iter().filter(|case| case.result.is_err()).count();
        (passed, failed) = (passed + outcomes.len() - failures, failed + failures);
    }
    drop(scratch);
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn inspect(plugin: &str, args: &HostArgs) -> anyhow::Result<ExitCode> {
    let mut host = args.start()?;
    let name = resolve(&mut host, plugin)?;
    let found = host.inspect(&name)?;
    println!("name:       {}", found.name);
    println!(
        "world:      {}",
        found.world.as_deref().unwrap_or("(not a Berth storage driver)")
    );
    println!(
        "provisions: {}",
        if found.provisions_storage {
            "yes (exports the provisioner)"
        } else {
            "no"
        }
    );
    println!("size:       {} bytes", found.size);
    println!("sha256:     {}", found.sha256);
    println!("exports:");
    for export in &found.exports {
        println!("  {export}");
    }
    println!("imports:");
    for import in &found.imports {
        println!("  {import}");
    }
    Ok(ExitCode::SUCCESS)
}

fn list(args: &HostArgs) -> anyhow::Result<ExitCode> {
    let host = args.start()?;
    for source in host.plugins() {
        match &source.origin {
            Origin::Bundled => println!("{:<16} bundled", source.name),
            Origin::File(path) => println!("{:<16} {}", source.name, path.display()),
        }
    }
    Ok(ExitCode::SUCCESS)
}
