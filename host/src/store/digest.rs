//! Content digests (`<algorithm>:<hex>`) and the hashing that computes
//! them: the one place the registry knows its digest algorithms.

use std::fmt;

use sha2::{Digest as _, Sha256, Sha512};

/// A content digest `<algorithm>:<hex>` of an algorithm the registry can
/// compute, with the hex of the algorithm's exact length in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

/// The digest algorithms the registry verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// The algorithm `name` (as in a digest, or `?digest-algorithm=`).
    pub fn parse(name: &str) -> Result<Algorithm, DigestError> {
        match name {
            "sha256" => Ok(Algorithm::Sha256),
            "sha512" => Ok(Algorithm::Sha512),
            other => Err(DigestError::UnsupportedAlgorithm(other.to_string())),
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// Why a string is not a [`Digest`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest `{0}` is not of the form <algorithm>:<hex>")]
    Malformed(String),
    #[error("digest algorithm `{0}` is not supported (sha256, sha512 are)")]
    UnsupportedAlgorithm(String),
    #[error("digest `{0}` does not have the length and lower-case hex its algorithm needs")]
    BadHex(String),
}

impl Digest {
    pub fn parse(text: &str) -> Result<Digest, DigestError> {
        let (algorithm, hex) = text
            .split_once(':')
            .ok_or_else(|| DigestError::Malformed(text.to_string()))?;
        if algorithm.is_empty() {
            return Err(DigestError::Malformed(text.to_string()));
        }
        let algorithm = Algorithm::parse(algorithm)?;
        let lower_hex = hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if hex.len() != algorithm.hex_len() || !lower_hex {
            return Err(DigestError::BadHex(text.to_string()));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    /// The digest a hasher of `algorithm` produced as `hash`.
    fn from_hash(algorithm: Algorithm, hash: &[u8]) -> Digest {
        Digest {
            algorithm,
            hex: hex::encode(hash),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// Incremental hashing for the algorithms a [`Digest`] may name.
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest::from_hash(Algorithm::Sha256, &h.finalize()),
            Hasher::Sha512(h) => Digest::from_hash(Algorithm::Sha512, &h.finalize()),
        }
    }
}

impl Digest {
    /// The digest of `content` with `algorithm`.
    pub fn of(algorithm: Algorithm, content: &[u8]) -> Digest {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(content);
        hasher.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digests_are_checked() {
        assert!(Digest::parse(&format!("sha256:{HEX}")).is_ok());
        assert!(Digest::parse(&format!("sha512:{HEX}{HEX}")).is_ok());
        for (text, want) in [
            (format!("sha256{HEX}"), "Malformed"),
            (format!(":{HEX}"), "Malformed"),
            (format!("md5:{HEX}"), "UnsupportedAlgorithm"),
            (format!("sha256:{}", &HEX[1..]), "BadHex"),
            (format!("sha256:{}", HEX.to_uppercase()), "BadHex"),
            (format!("sha256:{}g", &HEX[1..]), "BadHex"),
            (format!("sha512:{HEX}"), "BadHex"),
        ] {
            let err = Digest::parse(&text).unwrap_err();
            assert!(format!("{err:?}").starts_with(want), "{text}: {err:?}");
        }
    }

    #[test]
    fn hashes_are_the_algorithms() {
        assert_eq!(Digest::of(Algorithm::Sha256, b"").hex(), HEX);
        assert_eq!(Digest::of(Algorithm::Sha512, b"abc").hex().len(), 128);
    }
}
