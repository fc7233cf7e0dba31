//! The path rules of the storage contract, checked on the host so that a
//! plugin never sees a path outside them.

use super::StorageError;

/// A file path: `^(/[A-Za-z0-9._-]+)+$`, without `.` or `..` components.
pub fn check_file_path(path: &str) -> Result<(), StorageError> {
    let valid = path.len() > 1 && path.starts_with('/') && path[1..].split('/').all(is_valid_component);
    if valid {
        Ok(())
    } else {
        Err(StorageError::InvalidPath(path.to_string()))
    }
}

/// A directory path: a file path, or `/` for the root.
pub fn check_directory_path(path: &str) -> Result<(), StorageError> {
    if path == "/" {
        Ok(())
    } else {
        check_file_path(path)
    }
}

fn is_valid_component(component: &str) -> bool {
    !component.is_empty()
        && component != "."
        && component != ".."
        && component
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_distribution_paths() {
        for path in [
            "/a",
            "/docker/registry/v2/blobs/sha256/ab/abcd/data",
            "/a.b/_c-d/.hidden",
            "/x/.../y",
        ] {
            assert!(check_file_path(path).is_ok(), "{path}");
        }
        assert!(check_directory_path("/").is_ok());
    }

    #[test]
    fn rejects_everything_else() {
        for path in [
            "", "/", "a", "a/b", "//a", "/a/", "/a//b", "/a/../b", "/..", "/.", "/a b", "/a\\b", "/ä", "/a\0",
        ] {
            assert!(check_file_path(path).is_err(), "{path:?}");
        }
        assert!(check_directory_path("").is_err());
        assert!(check_directory_path("/a/").is_err());
    }
}
