//! The `filesystem` storage driver: distribution's filesystem driver as a
//! component.
//!
//! The host pre-opens the `rootdirectory` at the same path inside the guest,
//! so a storage path `/a/b` is the file `{rootdirectory}/a/b`. Directory
//! operations go through `std::fs`; file content goes through
//! `wasi:filesystem` descriptors directly, because std writes in 64 KiB pieces
//! and one positional write per chunk is markedly faster. Each path's content
//! is one file, which `local-files` names so that the host reads it itself.

wit_bindgen::generate!({
    path: "../../wit/storage",
    world: "berth:storage/maintained-local-storage-driver@0.1.0",
});

use std::cell::Cell;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth::storage::types::InstanceModel;
use exports::berth::storage::driver::{
    DriverInfo, Error, FileInfo, FileReader, FileWriter, Guest, GuestFileReader, GuestFileWriter,
};
use exports::berth::storage::fixed_answers::AnswerSet;
use exports::berth::storage::maintenance::PurgePage;
use wasi::filesystem::types::{Descriptor, DescriptorFlags, ErrorCode, OpenFlags, PathFlags};

struct Filesystem;

export!(Filesystem);

/// The configured root directory.
struct Root {
    /// Its path inside the guest, without a trailing `/`.
    path: String,
    /// The preopen that is this directory, for opening files by `wasi`.
    dir: Descriptor,
}

static ROOT: OnceLock<Root> = OnceLock::new();

fn root() -> Result<&'static Root, Error> {
    ROOT.get()
        .ok_or_else(|| Error::Backend("the filesystem driver was not initialised".into()))
}

impl Root {
    /// The guest path of the storage path `path`.
    fn full(&self, path: &str) -> String {
        format!("{}{path}", self.path)
    }

    fn open(&self, path: &str, open: OpenFlags, flags: DescriptorFlags) -> Result<Descriptor, Error> {
        let relative = path.trim_start_matches('/');
        self.dir
            .open_at(PathFlags::SYMLINK_FOLLOW, relative, open, flags)
            .at(path)
    }

    /// Opens `path` for writing, creating it and its parent directories.
    fn create(&self, path: &str, open: OpenFlags) -> Result<Descriptor, Error> {
        if let Some(parent) = Path::new(&self.full(path)).parent() {
            fs::create_dir_all(parent).at(path)?;
        }
        self.open(path, OpenFlags::CREATE | open, DescriptorFlags::WRITE)
    }
}

/// Turns an I/O failure at a storage path into the contract's error.
trait At<T> {
    fn at(self, path: &str) -> Result<T, Error>;
}

// A file where a directory was expected means the path does not exist, as in
// distribution (listing a file is path-not-found).
impl<T> At<T> for io::Result<T> {
    fn at(self, path: &str) -> Result<T, Error> {
        self.map_err(|e| match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => Error::PathNotFound(path.into()),
            _ => Error::Backend(format!("{path}: {e}")),
        })
    }
}

impl<T> At<T> for Result<T, ErrorCode> {
    fn at(self, path: &str) -> Result<T, Error> {
        self.map_err(|e| match e {
            ErrorCode::NoEntry | ErrorCode::NotDirectory => Error::PathNotFound(path.into()),
            _ => Error::Backend(format!("{path}: {e}")),
        })
    }
}

/// How old another writer's temporary file must be to count as left behind
/// by a write that was interrupted (a killed process), not one in progress.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// The name a temporary file of this driver stands in for, when `file_name`
/// is one: `.<name>.<16 hex>.tmp`, as `put-content` writes before renaming.
fn temporary_for(file_name: &str) -> Option<&str> {
    let rest = file_name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (name, random) = rest.rsplit_once('.')?;
    let random_ok = random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit());
    (random_ok && !name.is_empty()).then_some(name)
}

/// Whether a file modified at `modified` has been left alone for `age`.
fn untouched_for(modified: SystemTime, age: Duration) -> bool {
    modified.elapsed().is_ok_and(|elapsed| elapsed > age)
}

/// Removes the temporary siblings of `name` in `dir` older than
/// [`STALE_TEMP`]: what interrupted writes of the same path left. Best
/// effort; a failure leaves them for the next write or upload purging.
fn sweep_stale_temps(dir: &str, name: &str) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        if file_name.to_str().and_then(temporary_for) != Some(name) {
            continue;
        }
        let stale = entry
            .metadata()
            .and_then(|meta| meta.modified())
            .is_ok_and(|modified| untouched_for(modified, STALE_TEMP));
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The storage path of the entry `name` in the directory `dir`.
fn child(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

fn info(path: String, meta: &fs::Metadata) -> FileInfo {
    let modified = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok());
    FileInfo {
        path,
        size: if meta.is_dir() { 0 } else { meta.len() },
        modified_ns: modified.map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        is_dir: meta.is_dir(),
    }
}

/// Reads up to `len` bytes from `offset`, fewer only at the end of the file.
/// One `read` may return less than asked (wasmtime-wasi returns at most
/// 64 KiB per call), hence the loop.
fn read_at(file: &Descriptor, offset: u64, len: u64) -> Result<Vec<u8>, ErrorCode> {
    let mut data = Vec::new();
    while (data.len() as u64) < len {
        let have = data.len() as u64;
        let (chunk, eof) = file.read(len - have, offset + have)?;
        let end = eof || chunk.is_empty();
        if data.is_empty() {
            data = chunk; // the usual single read: no copy
        } else {
            data.extend_from_slice(&chunk);
        }
        if end {
            break;
        }
    }
    Ok(data)
}

/// Writes all of `data` at `offset`.
fn write_at(file: &Descriptor, mut data: &[u8], mut offset: u64) -> Result<(), ErrorCode> {
    while !data.is_empty() {
        let written = file.write(data, offset)?;
        if written == 0 {
            return Err(ErrorCode::Io); // would loop forever
        }
        data = &data[written as usize..];
        offset += written;
    }
    Ok(())
}

/// Appends to `page`, in lexical order of path, the files below the directory
/// `dir` whose paths sort after `after`, until `page` holds `limit` entries.
fn walk_dir(root: &Root, dir: &str, after: &str, limit: usize, page: &mut Vec<FileInfo>) -> io::Result<()> {
    // Key each entry by its path, with a trailing `/` for directories: every
    // descendant of a directory starts with that key, so sorting by keys
    // visits files in the order their full paths sort ("a-1" < "a/x").
    let mut entries = Vec::new();
    for entry in fs::read_dir(root.full(dir))? {
        let entry = entry?;
        // A name that is not UTF-8 cannot be a storage path.
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let mut key = child(dir, &name);
        if entry.file_type()?.is_dir() {
            key.push('/');
        }
        entries.push((key, entry));
    }
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));

    for (key, entry) in entries {
        if page.len() >= limit {
            break;
        }
        if let Some(subdir) = key.strip_suffix('/') {
            // A subtree sorting entirely at or before `after` is skipped.
            if key.as_str() > after || after.starts_with(&key) {
                match walk_dir(root, subdir, after, limit, page) {
                    // Deleted while we walk: it has no files any more.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    result => result?,
                }
            }
        } else if key.as_str() > after {
            match entry.metadata() {
                Ok(meta) => page.push(info(key, &meta)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

impl Guest for Filesystem {
    type FileReader = Reader;
    type FileWriter = Writer;

    fn describe() -> DriverInfo {
        DriverInfo {
            instance_model: InstanceModel::PerCall,
            directory_parameter: Some("rootdirectory".into()),
            network: None,
        }
    }

    fn init(parameters: Vec<(String, String)>) -> Result<(), Error> {
        let mut directory = None;
        for (key, value) in parameters {
            match key.as_str() {
                "rootdirectory" => directory = Some(value),
                // Distribution's bound on its goroutines; nothing to bound here.
                "maxthreads" => {}
                _ => {
                    return Err(Error::Backend(format!(
                        "unknown parameter {key:?} for the filesystem driver \
                         (known: rootdirectory, maxthreads)"
                    )))
                }
            }
        }
        let directory = directory.ok_or_else(|| {
            Error::Backend(
                "the filesystem driver needs the parameter \"rootdirectory\": \
                 the absolute path of the directory to store into"
                    .into(),
            )
        })?;
        if !directory.starts_with('/') {
            return Err(Error::Backend(format!(
                "the parameter \"rootdirectory\" must be an absolute path, not {directory:?}"
            )));
        }
        let path = directory.trim_end_matches('/');
        let dir = wasi::filesystem::preopens::get_directories()
            .into_iter()
            .find(|(_, guest)| guest.trim_end_matches('/') == path)
            .map(|(dir, _)| dir)
            .ok_or_else(|| Error::Backend(format!("rootdirectory {directory:?} was not pre-opened by the host")))?;
        let root = Root { path: path.into(), dir };
        ROOT.set(root)
            .map_err(|_| Error::Backend("the filesystem driver was initialised twice".into()))
    }

    fn get_content(path: String) -> Result<Vec<u8>, Error> {
        let file = root()?.open(&path, OpenFlags::empty(), DescriptorFlags::READ)?;
        let size = file.stat().at(&path)?.size;
        read_at(&file, 0, size).at(&path)
    }

    fn put_content(path: String, content: Vec<u8>) -> Result<(), Error> {
        // Readers must never see half-written content: write a hidden sibling,
        // then rename it over `path`. The random part keeps concurrent writers
        // (other instances, other replicas) apart.
        let root = root()?;
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", &path));
        let random = wasi::random::random::get_random_u64();
        let temp = format!("{dir}/.{name}.{random:016x}.tmp");
        let written = root
            .create(&temp, OpenFlags::EXCLUSIVE)
            .and_then(|file| write_at(&file, &content, 0).and_then(|()| file.sync_data()).at(&path))
            .and_then(|()| fs::rename(root.full(&temp), root.full(&path)).at(&path));
        if written.is_err() {
            let _ = fs::remove_file(root.full(&temp));
        } else {
            sweep_stale_temps(&root.full(dir), name);
        }
        written
    }

    fn reader(path: String, offset: u64) -> Result<FileReader, Error> {
        let file = root()?.open(&path, OpenFlags::empty(), DescriptorFlags::READ)?;
        Ok(FileReader::new(Reader {
            path,
            file,
            offset: Cell::new(offset),
        }))
    }

    fn writer(path: String, append: bool) -> Result<FileWriter, Error> {
        let root = root()?;
        let (file, size) = if append {
            let file = root.create(&path, OpenFlags::empty())?;
            let size = file.stat().at(&path)?.size;
            (file, size)
        } else {
            (root.create(&path, OpenFlags::TRUNCATE)?, 0)
        };
        Ok(FileWriter::new(Writer {
            path,
            file,
            size: Cell::new(size),
            closed: Cell::new(false),
        }))
    }

    fn stat(path: String) -> Result<FileInfo, Error> {
        let meta = fs::metadata(root()?.full(&path)).at(&path)?;
        Ok(info(path, &meta))
    }

    fn list(path: String) -> Result<Vec<String>, Error> {
        let mut children = Vec::new();
        for entry in fs::read_dir(root()?.full(&path)).at(&path)? {
            // A name that is not UTF-8 cannot be a storage path.
            if let Ok(name) = entry.at(&path)?.file_name().into_string() {
                children.push(child(&path, &name));
            }
        }
        children.sort_unstable();
        Ok(children)
    }

    fn move_path(source: String, destination: String) -> Result<(), Error> {
        let root = root()?;
        let (from, to) = (root.full(&source), root.full(&destination));
        // Check the source first so a failed move creates no directories.
        fs::symlink_metadata(&from).at(&source)?;
        if let Some(parent) = Path::new(&to).parent() {
            fs::create_dir_all(parent).at(&destination)?;
        }
        fs::rename(&from, &to).at(&source)
    }

    fn delete(path: String) -> Result<(), Error> {
        let full = root()?.full(&path);
        if fs::symlink_metadata(&full).at(&path)?.is_dir() {
            fs::remove_dir_all(&full).at(&path)
        } else {
            fs::remove_file(&full).at(&path)
        }
    }

    fn redirect_url(_method: String, _path: String) -> Result<Option<String>, Error> {
        Ok(None)
    }

    fn walk(path: String, start_after: Option<String>, limit: u32) -> Result<Vec<FileInfo>, Error> {
        let mut page = Vec::new();
        let after = start_after.as_deref().unwrap_or("");
        walk_dir(root()?, &path, after, limit as usize, &mut page).at(&path)?;
        Ok(page)
    }
}

impl exports::berth::storage::local_files::Guest for Filesystem {
    fn file_path(path: String) -> Result<Option<String>, Error> {
        Ok(Some(root()?.full(&path)))
    }
}

impl exports::berth::storage::fixed_answers::Guest for Filesystem {
    fn answers() -> AnswerSet {
        // `redirect_url` and `file_path` above, for every path.
        AnswerSet {
            never_redirects: true,
            files_at_their_paths: true,
        }
    }
}

impl exports::berth::storage::maintenance::Guest for Filesystem {
    fn purge_temporary(older_than_seconds: u64, start_after: Option<String>, limit: u32) -> Result<PurgePage, Error> {
        let root = root()?;
        let limit = limit.max(1) as usize;
        let mut page = Vec::new();
        walk_dir(root, "/", start_after.as_deref().unwrap_or(""), limit, &mut page).at("/")?;
        let age = Duration::from_secs(older_than_seconds);
        let mut removed = 0;
        for file in &page {
            let name = file.path.rsplit('/').next().unwrap_or_default();
            let modified = UNIX_EPOCH + Duration::from_nanos(file.modified_ns);
            if temporary_for(name).is_none() || !untouched_for(modified, age) {
                continue;
            }
            match fs::remove_file(root.full(&file.path)) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::Backend(format!("{}: {e}", file.path))),
            }
        }
        // A short page means the walk is complete.
        let next = page
            .last()
            .filter(|_| page.len() >= limit)
            .map(|file| file.path.clone());
        Ok(PurgePage { removed, next })
    }
}

/// An open file and the position of the next read.
struct Reader {
    path: String,
    file: Descriptor,
    offset: Cell<u64>,
}

impl GuestFileReader for Reader {
    fn read(&self, max_bytes: u32) -> Result<Vec<u8>, Error> {
        let data = read_at(&self.file, self.offset.get(), max_bytes.into()).at(&self.path)?;
        self.offset.set(self.offset.get() + data.len() as u64);
        Ok(data)
    }
}

/// A file open for writing; `size` is where the next write goes.
struct Writer {
    path: String,
    file: Descriptor,
    size: Cell<u64>,
    /// Closed, committed or cancelled: no further writes.
    closed: Cell<bool>,
}

impl Writer {
    /// Ends the writer, once.
    fn finish(&self) -> Result<(), Error> {
        if self.closed.replace(true) {
            return Err(Error::Backend(format!(
                "{}: the writer was already closed, committed or cancelled",
                self.path
            )));
        }
        Ok(())
    }
}

impl GuestFileWriter for Writer {
    fn write(&self, data: Vec<u8>) -> Result<u64, Error> {
        if self.closed.get() {
            return Err(Error::Backend(format!(
                "{}: write after close, commit or cancel",
                self.path
            )));
        }
        write_at(&self.file, &data, self.size.get()).at(&self.path)?;
        self.size.set(self.size.get() + data.len() as u64);
        Ok(data.len() as u64)
    }

    fn size(&self) -> u64 {
        self.size.get()
    }

    fn close(&self) -> Result<(), Error> {
        // The content is already in place for a later append.
        self.finish()
    }

    fn cancel(&self) -> Result<(), Error> {
        self.finish()?;
        fs::remove_file(root()?.full(&self.path)).at(&self.path)
    }

    fn commit(&self) -> Result<(), Error> {
        self.finish()?;
        self.file.sync_data().at(&self.path)
    }
}
