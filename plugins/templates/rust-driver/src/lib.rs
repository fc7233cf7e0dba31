//! `{{name}}`: a Berth storage driver that keeps every file in the plugin's
//! own memory. It passes the whole conformance suite (`./test.sh`), so it is
//! a working starting point: replace the map below with calls to your own
//! store, keeping the semantics each function's comment in wit/storage.wit
//! asks for, and run ./test.sh after each change.
//!
//! Files are kept in one map ordered by path; a directory exists exactly when
//! some file is below it, and `/` always exists. Paths reaching the driver are
//! already checked by the host: absolute, `/`-separated, no `.` or `..`.

wit_bindgen::generate!({
    path: "wit",
    world: "berth:storage/storage-driver@0.1.0",
});

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::time::{SystemTime, UNIX_EPOCH};

use berth::storage::host::{log, Level};
use berth::storage::types::InstanceModel;
use exports::berth::storage::driver::{
    DriverInfo, Error, FileInfo, FileReader, FileWriter, Guest, GuestFileReader, GuestFileWriter,
};

struct Driver;

export!(Driver);

struct File {
    data: Vec<u8>,
    modified_ns: u64,
}

type Files = BTreeMap<String, File>;

// The whole store. It lives as long as the instance, which is as long as the
// process because `describe` asks for a resident instance.
thread_local! {
    static FILES: RefCell<Files> = const { RefCell::new(BTreeMap::new()) };
}

fn now_ns() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
}

/// The prefix every path below the directory `path` starts with.
fn dir_prefix(path: &str) -> String {
    format!("{}/", path.trim_end_matches('/'))
}

/// The files below the directory with `prefix` (see [`dir_prefix`]), in order.
fn below<'a>(files: &'a Files, prefix: &'a str) -> impl Iterator<Item = (&'a String, &'a File)> {
    files
        .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
        .take_while(move |(path, _)| path.starts_with(prefix))
}

fn is_dir(files: &Files, path: &str) -> bool {
    path == "/" || below(files, &dir_prefix(path)).next().is_some()
}

fn file<'a>(files: &'a Files, path: &str) -> Result<&'a File, Error> {
    files.get(path).ok_or_else(|| {
        if is_dir(files, path) {
            Error::Backend(format!("{path} is a directory"))
        } else {
            Error::PathNotFound(path.into())
        }
    })
}

/// Keeps the map a tree: no file where a directory is, nor below a file.
fn check_creatable(files: &Files, path: &str) -> Result<(), Error> {
    if is_dir(files, path) {
        return Err(Error::Backend(format!("{path} is a directory")));
    }
    let mut ancestors = path.match_indices('/').map(|(end, _)| &path[..end]);
    match ancestors.find(|ancestor| files.contains_key(*ancestor)) {
        Some(ancestor) => Err(Error::Backend(format!("{ancestor} is a file"))),
        None => Ok(()),
    }
}

fn file_info(path: &str, file: &File) -> FileInfo {
    FileInfo {
        path: path.into(),
        size: file.data.len() as u64,
        modified_ns: file.modified_ns,
        is_dir: false,
    }
}

impl Guest for Driver {
    type FileReader = Reader;
    type FileWriter = Writer;

    fn describe() -> DriverInfo {
        DriverInfo {
            // `Resident`: one instance for the whole process, so the memory
            // above survives between calls. A driver whose data lives
            // elsewhere (a service, a directory) answers `PerCall`.
            instance_model: InstanceModel::Resident,
            // Name a parameter here to be given that host directory.
            directory_parameter: None,
            // Or describe how this driver reaches its service over HTTP.
            network: None,
        }
    }

    /// `parameters` are the entries under `storage:` → `{{name}}:` in the
    /// registry configuration, as strings. Read and check yours here.
    fn init(parameters: Vec<(String, String)>) -> Result<(), Error> {
        if let Some((key, _)) = parameters.first() {
            return Err(Error::Backend(format!(
                "unknown parameter {key:?}: the {{name}} driver takes no parameters"
            )));
        }
        log(Level::Debug, "{{name}} initialised");
        Ok(())
    }

    fn get_content(path: String) -> Result<Vec<u8>, Error> {
        FILES.with_borrow(|files| Ok(file(files, &path)?.data.clone()))
    }

    fn put_content(path: String, content: Vec<u8>) -> Result<(), Error> {
        FILES.with_borrow_mut(|files| {
            check_creatable(files, &path)?;
            let modified_ns = now_ns();
            files.insert(
                path,
                File {
                    data: content,
                    modified_ns,
                },
            );
            Ok(())
        })
    }

    fn reader(path: String, offset: u64) -> Result<FileReader, Error> {
        FILES.with_borrow(|files| file(files, &path).map(|_| ()))?;
        let offset = Cell::new(offset);
        Ok(FileReader::new(Reader { path, offset }))
    }

    fn writer(path: String, append: bool) -> Result<FileWriter, Error> {
        FILES.with_borrow_mut(|files| {
            check_creatable(files, &path)?;
            let file = files.entry(path.clone()).or_insert(File {
                data: Vec::new(),
                modified_ns: 0,
            });
            if !append {
                file.data.clear();
            }
            file.modified_ns = now_ns();
            Ok(())
        })?;
        let closed = Cell::new(false);
        Ok(FileWriter::new(Writer { path, closed }))
    }

    fn stat(path: String) -> Result<FileInfo, Error> {
        FILES.with_borrow(|files| {
            if let Some(file) = files.get(&path) {
                return Ok(file_info(&path, file));
            }
            // A directory was modified when the newest file below it was.
            let newest = below(files, &dir_prefix(&path))
                .map(|(_, f)| f.modified_ns)
                .max();
            match newest {
                None if path != "/" => Err(Error::PathNotFound(path)),
                _ => Ok(FileInfo {
                    path,
                    size: 0,
                    modified_ns: newest.unwrap_or(0),
                    is_dir: true,
                }),
            }
        })
    }

    fn list(path: String) -> Result<Vec<String>, Error> {
        FILES.with_borrow(|files| {
            if !is_dir(files, &path) {
                return Err(Error::PathNotFound(path));
            }
            let prefix = dir_prefix(&path);
            let children: BTreeSet<&str> = below(files, &prefix)
                .map(
                    |(descendant, _)| match descendant[prefix.len()..].find('/') {
                        Some(end) => &descendant[..prefix.len() + end],
                        None => descendant,
                    },
                )
                .collect();
            Ok(children.into_iter().map(String::from).collect())
        })
    }

    fn move_path(source: String, destination: String) -> Result<(), Error> {
        FILES.with_borrow_mut(|files| {
            if source == destination {
                // Like rename(2): nothing to do once the source is known to exist.
                if files.contains_key(&source) || is_dir(files, &source) {
                    return Ok(());
                }
                return Err(Error::PathNotFound(source));
            }
            if files.contains_key(&source) {
                check_creatable(files, &destination)?;
                if let Some(file) = files.remove(&source) {
                    files.insert(destination, file);
                }
                return Ok(());
            }
            // A directory: move every file below it.
            let from = dir_prefix(&source);
            let moved: Vec<String> = below(files, &from).map(|(path, _)| path.clone()).collect();
            if moved.is_empty() {
                return Err(Error::PathNotFound(source));
            }
            if destination.starts_with(&from) {
                return Err(Error::Backend(format!("cannot move {source} into itself")));
            }
            check_creatable(files, &destination)?;
            if files.contains_key(&destination) {
                return Err(Error::Backend(format!("{destination} is a file")));
            }
            for path in moved {
                if let Some(file) = files.remove(&path) {
                    files.insert(format!("{destination}/{}", &path[from.len()..]), file);
                }
            }
            Ok(())
        })
    }

    fn delete(path: String) -> Result<(), Error> {
        FILES.with_borrow_mut(|files| {
            if files.remove(&path).is_some() {
                return Ok(());
            }
            let doomed: Vec<String> = below(files, &dir_prefix(&path))
                .map(|(path, _)| path.clone())
                .collect();
            if doomed.is_empty() {
                return Err(Error::PathNotFound(path));
            }
            for path in doomed {
                files.remove(&path);
            }
            Ok(())
        })
    }

    /// None: clients are served through the registry. A driver in front of
    /// a service that can hand out signed URLs may return one here.
    fn redirect_url(_method: String, _path: String) -> Result<Option<String>, Error> {
        Ok(None)
    }

    /// Returning `Err(Error::Unsupported("walk".into()))` is allowed too:
    /// the host then walks with `list` and `stat`.
    fn walk(path: String, start_after: Option<String>, limit: u32) -> Result<Vec<FileInfo>, Error> {
        FILES.with_borrow(|files| {
            if !is_dir(files, &path) {
                return Err(Error::PathNotFound(path));
            }
            let prefix = dir_prefix(&path);
            let start = match &start_after {
                Some(after) if *after >= prefix => Bound::Excluded(after.as_str()),
                _ => Bound::Included(prefix.as_str()),
            };
            let page = files
                .range::<str, _>((start, Bound::Unbounded))
                .take_while(|(path, _)| path.starts_with(&prefix))
                .take(limit as usize)
                .map(|(path, file)| file_info(path, file))
                .collect();
            Ok(page)
        })
    }
}

/// Reads the current content of `path`, from `offset` on.
struct Reader {
    path: String,
    offset: Cell<u64>,
}

impl GuestFileReader for Reader {
    fn read(&self, max_bytes: u32) -> Result<Vec<u8>, Error> {
        FILES.with_borrow(|files| {
            let data = &file(files, &self.path)?.data;
            let start =
                usize::try_from(self.offset.get()).map_or(data.len(), |o| o.min(data.len()));
            let end = start + (data.len() - start).min(max_bytes as usize);
            self.offset.set(self.offset.get() + (end - start) as u64);
            Ok(data[start..end].to_vec())
        })
    }
}

/// Writes straight into the file at `path`, so what it wrote survives the
/// writer, as an interrupted upload's content must for a later append.
struct Writer {
    path: String,
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
        FILES.with_borrow_mut(|files| {
            // Moved or deleted by someone else since the writer opened it.
            let file = files
                .get_mut(&self.path)
                .ok_or_else(|| Error::PathNotFound(self.path.clone()))?;
            file.data.extend_from_slice(&data);
            file.modified_ns = now_ns();
            Ok(data.len() as u64)
        })
    }

    fn size(&self) -> u64 {
        FILES.with_borrow(|files| files.get(&self.path).map_or(0, |f| f.data.len() as u64))
    }

    fn close(&self) -> Result<(), Error> {
        // The content is already in place for a later append.
        self.finish()
    }

    fn cancel(&self) -> Result<(), Error> {
        self.finish()?;
        FILES.with_borrow_mut(|files| files.remove(&self.path));
        Ok(())
    }

    fn commit(&self) -> Result<(), Error> {
        self.finish()
    }
}
