//! An htpasswd file of bcrypt entries (`user:$2y$...`), as distribution's
//! htpasswd auth reads it: read at start, read again when it changes, and
//! checked with bcrypt off the async threads. A credential that verified is
//! remembered briefly, so a pull of many layers pays bcrypt once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest as _, Sha256};

/// How often the file is looked at for a change, at most.
const RECHECK: Duration = Duration::from_secs(1);
/// How long a verified user and password are taken without bcrypt.
const VERIFIED_FOR: Duration = Duration::from_secs(60);
/// Verified credentials remembered at once; beyond it the oldest are
/// forgotten (they cost one bcrypt each to learn again).
const MAX_VERIFIED: usize = 1024;

/// The users of an htpasswd file, kept up to date with it.
pub struct Htpasswd {
    path: PathBuf,
    state: Mutex<State>,
}

struct State {
    /// User name to bcrypt hash.
    users: HashMap<String, String>,
    /// What the file looked like when `users` was read from it.
    stamp: Option<Stamp>,
    checked: Instant,
    /// SHA-256 of user, password and hash, to when it stops counting.
    verified: HashMap<[u8; 32], Instant>,
}

/// Enough of a file's metadata to tell that it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Htpasswd {
    /// Reads `path`; the error names the file, or the line and the user
    /// whose entry is not bcrypt.
    pub fn open(path: &Path) -> Result<Htpasswd, String> {
        let (users, stamp) = read(path)?;
        Ok(Htpasswd {
            path: path.to_path_buf(),
            state: Mutex::new(State {
                users,
                stamp: Some(stamp),
                checked: Instant::now(),
                verified: HashMap::new(),
            }),
        })
    }

    /// Whether `password` is `user`'s. A file that changed is read again
    /// first; one that became unreadable or invalid is logged and the
    /// users read before are kept.
    pub async fn verify(&self, user: &str, password: &str) -> bool {
        self.reload_if_changed().await;
        let (hash, key) = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let Some(hash) = state.users.get(user).cloned() else {
                return false;
            };
            let key = cache_key(user, password, &hash);
            let now = Instant::now();
            if state.verified.get(&key).is_some_and(|until| *until > now) {
                return true;
            }
            state.verified.remove(&key);
            (hash, key)
        };
        let password = password.to_string();
        let matches = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if matches {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if state.verified.len() >= MAX_VERIFIED {
                state.verified.retain(|_, until| *until > now);
                if state.verified.len() >= MAX_VERIFIED {
                    state.verified.clear();
                }
            }
            state.verified.insert(key, now + VERIFIED_FOR);
        }
        matches
    }

    async fn reload_if_changed(&self) {
        let previous = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.checked.elapsed() < RECHECK {
                return;
            }
            state.checked = Instant::now();
            state.stamp.clone()
        };
        let path = self.path.clone();
        let reread = tokio::task::spawn_blocking(move || {
            let stamp = stamp(&path).map_err(|err| format!("{}: {err}", path.display()))?;
            if Some(&stamp) == previous.as_ref() {
                return Ok(None);
            }
            read(&path).map(Some)
        })
        .await
        .unwrap_or_else(|err| Err(err.to_string()));
        match reread {
            Ok(None) => {}
            Ok(Some((users, stamp))) => {
                tracing::info!(file = %self.path.display(), users = users.len(), "auth.htpasswd: read the changed file");
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                state.users = users;
                state.stamp = Some(stamp);
                state.verified.clear();
            }
            Err(why) => {
                tracing::error!("auth.htpasswd: {why}; the users read before are kept");
                // Read it again once it is fixed, whatever its metadata.
                self.state.lock().unwrap_or_else(|e| e.into_inner()).stamp = None;
            }
        }
    }
}

fn cache_key(user: &str, password: &str, hash: &str) -> [u8; 32] {
    let mut digest = Sha256::new();
    for part in [user, password, hash] {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part.as_bytes());
    }
    digest.finalize().into()
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path)?;
    Ok(Stamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
        inode: metadata.ino(),
    })
}

fn read(path: &Path) -> Result<(HashMap<String, String>, Stamp), String> {
    let named = |err: std::io::Error| format!("{}: {err}", path.display());
    let stamp = stamp(path).map_err(named)?;
    let text = std::fs::read_to_string(path).map_err(named)?;
    let users = parse(&text).map_err(|why| format!("{}: {why}", path.display()))?;
    Ok((users, stamp))
}

/// The users of an htpasswd text: one `user:hash` per line, blank lines
/// and `#` comments ignored, bcrypt hashes only (`$2a$`, `$2b$`, `$2x$`,
/// `$2y$`), as distribution accepts.
pub fn parse(text: &str) -> Result<HashMap<String, String>, String> {
    let mut users = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let number = index + 1;
        let Some((user, hash)) = line.split_once(':') else {
            return Err(format!("line {number} is not `user:hash`"));
        };
        let bcrypt = ["$2a$", "$2b$", "$2x$", "$2y$"].iter().any(|p| hash.starts_with(p));
        if user.is_empty() || !bcrypt {
            return Err(format!(
                "line {number} (user `{user}`) is not a bcrypt entry; only bcrypt is accepted: \
                 write it with `htpasswd -B`"
            ));
        }
        users.insert(user.to_string(), hash.to_string());
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bcrypt_entries_are_accepted_and_the_line_is_named() {
        let hash = bcrypt::hash("secret", 4).unwrap();
        let users = parse(&format!("# users\n\nalice:{hash}\n")).unwrap();
        assert_eq!(users.get("alice"), Some(&hash));
        for (line, user) in [
            ("bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "bob"),
            ("carol:$apr1$x$y", "carol"),
            ("dave:plaintext", "dave"),
        ] {
            let err = parse(&format!("alice:{hash}\n{line}\n")).unwrap_err();
            assert!(err.contains("line 2") && err.contains(user), "{err}");
            assert!(
                !err.contains(&line[user.len() + 1..]),
                "the hash is not repeated: {err}"
            );
        }
        assert!(parse("no-colon").unwrap_err().contains("line 1"));
    }

    #[tokio::test]
    async fn a_changed_file_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, format!("alice:{}\n", bcrypt::hash("one", 4).unwrap())).unwrap();
        let file = Htpasswd::open(&path).unwrap();
        assert!(file.verify("alice", "one").await);
        assert!(file.verify("alice", "one").await, "a second time, from the cache");
        assert!(!file.verify("alice", "two").await);
        assert!(!file.verify("bob", "one").await);

        std::fs::write(&path, format!("bob:{}\n", bcrypt::hash("two", 4).unwrap())).unwrap();
        tokio::time::sleep(RECHECK + Duration::from_millis(50)).await;
        assert!(file.verify("bob", "two").await);
        assert!(
            !file.verify("alice", "one").await,
            "a removed user is out, cache or not"
        );

        std::fs::write(&path, "bob:plaintext\n").unwrap();
        tokio::time::sleep(RECHECK + Duration::from_millis(50)).await;
        assert!(
            file.verify("bob", "two").await,
            "an invalid file keeps the users read before"
        );
    }
}
