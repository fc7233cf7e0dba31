//! `berth plugin new`: a buildable starting point for a plugin, from the
//! templates in `plugins/templates/` (embedded at build time), with the WIT
//! package its kind needs beside it.

use std::path::Path;

use anyhow::Context;
use clap::ValueEnum;

mod templates {
    include!(concat!(env!("OUT_DIR"), "/plugin_templates.rs"));
}

const STORAGE_WIT: &str = include_str!("../../../wit/storage/storage.wit");
const VALIDATE_WIT: &str = include_str!("../../../wit/validate/validate.wit");

#[derive(Clone, Copy, ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Kind {
    /// A storage driver (world `storage-driver` of wit/storage).
    Driver,
    /// A configuration validator (world `config-validator` of wit/validate).
    Validator,
}

/// Writes the template for `lang` and `kind` into `dir` (which must not
/// exist or be empty), naming the plugin `name`.
pub fn write(name: &str, lang: Lang, kind: Kind, dir: &Path) -> anyhow::Result<()> {
    crate::plugin::check_plugin_name(name).map_err(anyhow::Error::msg)?;
    if name.contains('.') || name.starts_with(|c: char| c.is_ascii_digit()) {
        anyhow::bail!("`{name}` is a plugin name, but a package needs one that has no `.` and starts with a letter");
    }
    let lang_name = lang
        .to_possible_value()
        .expect("no skipped values")
        .get_name()
        .to_string();
    let kind_name = kind
        .to_possible_value()
        .expect("no skipped values")
        .get_name()
        .to_string();
    let template = format!("{lang_name}-{kind_name}");
    let files: Vec<_> = templates::TEMPLATES.iter().filter(|(t, _, _)| *t == template).collect();
    anyhow::ensure!(!files.is_empty(), "this build of berth has no template {template}");
    if dir.exists() && dir.read_dir().map_or(true, |mut entries| entries.next().is_some()) {
        anyhow::bail!("{} exists and is not empty: choose a new directory", dir.display());
    }
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
    };
    let (wit_file, wit) = match kind {
        Kind::Driver => ("storage.wit", STORAGE_WIT),
        Kind::Validator => ("validate.wit", VALIDATE_WIT),
    };
    let mut written = vec![(format!("wit/{wit_file}"), wit.to_string())];
    written.extend(files.iter().map(|(_, path, text)| (fill(path), fill(text))));
    for (path, text) in &written {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
        if path.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    println!("wrote a {lang_name} {kind_name} named {name} into {}:", dir.display());
    for (path, _) in &written {
        println!("  {path}");
    }
    println!(
        "next: cd {} && ./build.sh && ./test.sh (README.md says more)",
        dir.display()
    );
    Ok(())
}
