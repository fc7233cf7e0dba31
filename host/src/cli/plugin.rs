//! `berth plugin test | inspect | list | new | push | pull`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::plugin_new::{Kind, Lang};
use crate::oci::{self, Client, Credentials, Reference};
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
    /// Write a buildable starting point for a new plugin into a directory:
    /// its source, the WIT package, build.sh, test.sh and a README.
    New {
        /// The plugin's name (letters, digits, `-`, `_`); its file will be NAME.wasm.
        name: String,
        #[arg(long, value_enum)]
        lang: Lang,
        #[arg(long, value_enum)]
        kind: Kind,
        /// Where to write it; default: ./NAME.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Push a plugin to a registry as an OCI artifact (the CNCF Wasm
    /// layout: a `application/vnd.wasm.config.v0+json` config and one
    /// `application/wasm` layer); prints the reference pinned by digest.
    Push {
        /// The component to push.
        file: PathBuf,
        /// `host[:port]/repository[:tag]`; the tag defaults to `latest`.
        reference: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Pull a plugin artifact and write its component to a file. A
    /// reference with a digest is checked against it.
    Pull {
        /// `host[:port]/repository[:tag][@sha256:...]`.
        reference: String,
        /// Where to write the component; default: ./<last part of the repository>.wasm.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

/// How to reach a registry.
#[derive(Args)]
pub struct RegistryArgs {
    /// Talk plain HTTP instead of HTTPS.
    #[arg(long)]
    plain_http: bool,
    /// A docker or podman auth file; default: $DOCKER_CONFIG/config.json,
    /// ~/.docker/config.json, $XDG_RUNTIME_DIR/containers/auth.json.
    #[arg(long, value_name = "FILE", conflicts_with = "username")]
    authfile: Option<PathBuf>,
    /// A username; the password is read from standard input.
    #[arg(long, requires = "password_stdin")]
    username: Option<String>,
    /// Read the password for --username from standard input.
    #[arg(long, requires = "username")]
    password_stdin: bool,
}

impl RegistryArgs {
    fn client(&self, reference: &Reference) -> anyhow::Result<Client> {
        let credentials = match &self.username {
            Some(username) => {
                let mut password = String::new();
                std::io::stdin()
                    .read_line(&mut password)
                    .context("reading the password from standard input")?;
                Some(Credentials {
                    username: username.clone(),
                    password: password.trim_end_matches(['\n', '\r']).to_string(),
                })
            }
            None => Credentials::from_auth_file(&reference.registry, self.authfile.as_deref())
                .map_err(anyhow::Error::msg)?,
        };
        Client::new(&reference.registry, self.plain_http, credentials).map_err(anyhow::Error::msg)
    }
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
        PluginCommand::New { name, lang, kind, dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            super::plugin_new::write(&name, lang, kind, &dir)?;
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Push {
            file,
            reference,
            registry,
        } => push(&file, &reference, &registry).await,
        PluginCommand::Pull {
            reference,
            output,
            registry,
        } => pull(&reference, output, &registry).await,
    }
}

async fn push(file: &Path, reference: &str, registry: &RegistryArgs) -> anyhow::Result<ExitCode> {
    let reference = Reference::parse(reference).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        reference.digest.is_none(),
        "push to a tag (or none, for `latest`), not a digest: the digest is the content's"
    );
    // Only what would load as a Berth plugin is pushed.
    let mut host = PluginHost::new(PluginHostOptions::default())?;
    let name = host.add_file(file)?;
    let found = host.inspect(&name)?;
    let Some(world) = &found.world else {
        anyhow::bail!(
            "{} is a component but neither a Berth storage driver nor a validator: it exports {}",
            file.display(),
            found.exports.join(", ")
        );
    };
    let source = host.plugins().find(|p| p.name == name).expect("the plugin just added");
    let wasm = source.wasm();
    let facts = oci::ComponentFacts {
        exports: found.exports.clone(),
        imports: found.imports.clone(),
    };
    let digest = oci::push(&registry.client(&reference)?, &reference, wasm, &facts)
        .await
        .map_err(anyhow::Error::msg)?;
    eprintln!("pushed {} ({world}, {} bytes)", file.display(), wasm.len());
    println!("{}", reference.pinned(&digest));
    Ok(ExitCode::SUCCESS)
}

async fn pull(reference: &str, output: Option<PathBuf>, registry: &RegistryArgs) -> anyhow::Result<ExitCode> {
    let reference = Reference::parse(reference).map_err(anyhow::Error::msg)?;
    let pulled = oci::pull(&registry.client(&reference)?, &reference)
        .await
        .map_err(anyhow::Error::msg)?;
    let output = output.unwrap_or_else(|| {
        let last = reference.repository.rsplit('/').next().unwrap_or("plugin");
        PathBuf::from(format!("{last}.wasm"))
    });
    crate::plugin::write_atomically(&output, &pulled.wasm).with_context(|| format!("writing {}", output.display()))?;
    eprintln!("wrote {} ({} bytes)", output.display(), pulled.wasm.len());
    println!("{}", reference.pinned(&pulled.digest));
    Ok(ExitCode::SUCCESS)
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
            Origin::Oci(reference) => println!("{:<16} {reference}", source.name),
        }
    }
    Ok(ExitCode::SUCCESS)
}
