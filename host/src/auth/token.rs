//! `auth.token`: the Docker registry token specification. A client that
//! gets a 401 asks the token server at `realm` for a token for the scope
//! the challenge names, and sends it as `Authorization: Bearer <JWT>`. The
//! registry verifies the JWT itself: signed by a key it trusts (an `x5c`
//! certificate chain ending at one of `rootcertbundle`, or a `kid` naming a
//! `jwks` key or a root certificate's key), issued by `issuer` for
//! `service`, within its time; its `access` claim says what it grants.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use simple_asn1::ASN1Block;
use webpki::{EndEntityCert, KeyPurposeIdIter};

/// The signature algorithms accepted: every asymmetric one the JWT library
/// has. A shared-secret algorithm (`HS256`) never is, so a public key can
/// never be used as an HMAC secret; `none` does not parse.
const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// How far `exp` and `nbf` may be off, for clocks that differ: distribution's
/// leeway.
const LEEWAY_SECONDS: u64 = 60;

/// Signature algorithms a certificate chain of `x5c` may use.
const CHAIN_ALGORITHMS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::ED25519,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

/// The keys and names a token is checked against.
pub struct Tokens {
    issuer: String,
    service: String,
    /// The root certificates `x5c` chains must end at.
    roots: Vec<TrustAnchor<'static>>,
    /// Keys by `kid`: the JWKS file's, and the root certificates' under
    /// their libtrust key IDs (what docker_auth and distribution's own
    /// token servers put in `kid`).
    keys: HashMap<String, DecodingKey>,
}

/// One grant of a token's `access` claim.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Grant {
    /// `repository` or `registry` (for `catalog`).
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    /// `pull`, `push`, `delete`, or `*` for all.
    #[serde(default)]
    pub actions: Vec<String>,
}

impl Grant {
    /// Whether this grants `action` on the resource `kind`/`name`.
    pub fn grants(&self, kind: &str, name: &str, action: &str) -> bool {
        self.kind == kind && self.name == name && self.actions.iter().any(|a| a == action || a == "*")
    }
}

/// What a verified token says.
#[derive(Debug, Deserialize)]
pub struct Claims {
    /// Who the token server issued it to, for logs; empty for anonymous.
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub access: Vec<Grant>,
}

impl Tokens {
    /// Reads the root certificates (PEM) and the JWKS file; the error says
    /// which file and why. At least one must be given.
    pub fn open(
        issuer: &str,
        service: &str,
        rootcertbundle: Option<&Path>,
        jwks: Option<&Path>,
    ) -> Result<Tokens, String> {
        let mut tokens = Tokens {
            issuer: issuer.to_string(),
            service: service.to_string(),
            roots: Vec::new(),
            keys: HashMap::new(),
        };
        if let Some(path) = rootcertbundle {
            let shown = path.display();
            let pem = std::fs::read(path).map_err(|err| format!("cannot read {shown}: {err}"))?;
            let certificates = rustls_pki_types::pem::PemObject::pem_slice_iter(&pem)
                .collect::<Result<Vec<CertificateDer<'static>>, _>>()
                .map_err(|err| format!("{shown} is not PEM certificates: {err}"))?;
            if certificates.is_empty() {
                return Err(format!("{shown} holds no certificate"));
            }
            for (index, certificate) in certificates.iter().enumerate() {
                let anchor = webpki::anchor_from_trusted_cert(certificate)
                    .map_err(|err| format!("certificate {} of {shown} is not usable: {err}", index + 1))?;
                let spki = EndEntityCert::try_from(certificate)
                    .map_err(|err| format!("certificate {} of {shown} is not usable: {err}", index + 1))?
                    .subject_public_key_info();
                let key =
                    key_of_spki(spki.as_ref()).map_err(|why| format!("certificate {} of {shown}: {why}", index + 1))?;
                tokens.keys.insert(libtrust_key_id(spki.as_ref()), key);
                tokens.roots.push(anchor.to_owned());
            }
        }
        if let Some(path) = jwks {
            let shown = path.display();
            let text = std::fs::read(path).map_err(|err| format!("cannot read {shown}: {err}"))?;
            let set: JwkSet = serde_json::from_slice(&text).map_err(|err| format!("{shown} is not a JWKS: {err}"))?;
            for (index, jwk) in set.keys.iter().enumerate() {
                let Some(kid) = jwk.common.key_id.clone() else {
                    return Err(format!(
                        "key {} of {shown} has no `kid`, so no token could name it",
                        index + 1
                    ));
                };
                let key = DecodingKey::from_jwk(jwk).map_err(|err| format!("key `{kid}` of {shown}: {err}"))?;
                tokens.keys.insert(kid, key);
            }
        }
        if tokens.keys.is_empty() {
            return Err("no key to verify tokens with: set rootcertbundle or jwks".into());
        }
        Ok(tokens)
    }

    /// The claims of `token` when it verifies: signed by a trusted key,
    /// issued by the issuer for the service, within its time. The error is
    /// why not, for the log (the client learns only that it is invalid).
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|err| format!("not a signed JWT: {err}"))?;
        let key = match (&header.x5c, &header.kid) {
            (Some(chain), _) => self.key_of_chain(chain)?,
            (None, Some(kid)) => self
                .keys
                .get(kid)
                .cloned()
                .ok_or_else(|| format!("unknown key `{kid}`"))?,
            (None, None) => return Err("the token names no key (neither x5c nor kid)".into()),
        };
        if !ALGORITHMS.contains(&header.alg) {
            return Err(format!(
                "the algorithm {:?} takes a shared secret, which is never accepted",
                header.alg
            ));
        }
        // The key's family must match the algorithm, which the library checks.
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.service]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|err| err.to_string())?;
        Ok(data.claims)
    }

    /// The key of the first certificate of `x5c` once the chain ends at a
    /// root certificate.
    fn key_of_chain(&self, chain: &[String]) -> Result<DecodingKey, String> {
        let der = chain
            .iter()
            .map(|c| {
                base64::engine::general_purpose::STANDARD
                    .decode(c)
                    .map(CertificateDer::from)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| format!("x5c is not base64 certificates: {err}"))?;
        let (leaf, intermediates) = der.split_first().ok_or("x5c is empty")?;
        let leaf_cert = EndEntityCert::try_from(leaf).map_err(|err| format!("x5c: {err}"))?;
        leaf_cert
            .verify_for_usage(
                CHAIN_ALGORITHMS,
                &self.roots,
                intermediates,
                UnixTime::now(),
                AnyUsage,
                None,
                None,
            )
            .map_err(|err| format!("x5c does not chain to a root certificate: {err}"))?;
        key_of_spki(leaf_cert.subject_public_key_info().as_ref())
    }
}

/// Token signing certificates carry whatever extended key usage their CA
/// gives them (often none); the chain, not the usage, is what is trusted.
struct AnyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyUsage {
    fn validate(&self, _: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        Ok(())
    }
}

/// The verifying key of a DER SubjectPublicKeyInfo: RSA, EC or Ed25519,
/// whose BIT STRING is the key in the form the JWT library takes.
fn key_of_spki(spki: &[u8]) -> Result<DecodingKey, String> {
    const RSA: &[u64] = &[1, 2, 840, 113549, 1, 1, 1];
    const EC: &[u64] = &[1, 2, 840, 10045, 2, 1];
    const ED25519: &[u64] = &[1, 3, 101, 112];
    let blocks = simple_asn1::from_der(spki).map_err(|err| format!("its public key is not DER: {err}"))?;
    let Some(ASN1Block::Sequence(_, fields)) = blocks.first() else {
        return Err("its public key is not a SubjectPublicKeyInfo".into());
    };
    let (Some(ASN1Block::Sequence(_, algorithm)), Some(ASN1Block::BitString(_, _, key))) =
        (fields.first(), fields.get(1))
    else {
        return Err("its public key is not a SubjectPublicKeyInfo".into());
    };
    let Some(ASN1Block::ObjectIdentifier(_, oid)) = algorithm.first() else {
        return Err("its public key names no algorithm".into());
    };
    let oid: Vec<u64> = oid
        .as_vec::<u64>()
        .map_err(|_| "its public key's algorithm is not an OID")?;
    match oid.as_slice() {
        RSA => Ok(DecodingKey::from_rsa_der(key)),
        EC => Ok(DecodingKey::from_ec_der(key)),
        ED25519 => Ok(DecodingKey::from_ed_der(key)),
        _ => Err(format!("its public key's algorithm {oid:?} is not RSA, EC or Ed25519")),
    }
}

/// libtrust's key ID of a public key: the SHA-256 of its DER
/// SubjectPublicKeyInfo, its first 240 bits in base32, in groups of four
/// joined by colons.
fn libtrust_key_id(spki: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let hash = Sha256::digest(spki);
    let mut bits = 0u64;
    let mut held = 0;
    let mut encoded = String::with_capacity(48);
    for byte in &hash[..30] {
        bits = (bits << 8) | u64::from(*byte);
        held += 8;
        while held >= 5 {
            held -= 5;
            encoded.push(char::from(ALPHABET[((bits >> held) & 31) as usize]));
        }
    }
    let groups: Vec<&str> = (0..12).map(|g| &encoded[g * 4..g * 4 + 4]).collect();
    groups.join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use rcgen::{CertificateParams, KeyPair, PublicKeyData as _, PKCS_ECDSA_P256_SHA256, PKCS_ED25519};
    use serde_json::json;

    const ISSUER: &str = "test-issuer";
    const SERVICE: &str = "berth-test";

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    /// A root CA and a signing certificate it issued, as PEM and DER.
    struct Pki {
        root_pem: String,
        signer: KeyPair,
        signer_der: Vec<u8>,
        root_key: KeyPair,
    }

    fn pki() -> Pki {
        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut root_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        root_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let root = root_params.self_signed(&root_key).unwrap();
        let signer = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let issuer = rcgen::Issuer::new(root_params, &root_key);
        let leaf = CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .signed_by(&signer, &issuer)
            .unwrap();
        Pki {
            root_pem: root.pem(),
            signer_der: leaf.der().to_vec(),
            signer,
            root_key,
        }
    }

    fn claims(overrides: serde_json::Value) -> serde_json::Value {
        let mut claims = json!({
            "iss": ISSUER, "aud": SERVICE, "sub": "alice",
            "exp": now() + 300, "nbf": now() - 5, "iat": now() - 5,
            "access": [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}],
        });
        for (key, value) in overrides.as_object().unwrap() {
            claims[key] = value.clone();
        }
        claims
    }

    fn sign(header: &Header, claims: &serde_json::Value, key: &KeyPair) -> String {
        let encoding = match header.alg {
            Algorithm::EdDSA => EncodingKey::from_ed_der(&key.serialize_der()),
            _ => EncodingKey::from_ec_der(&key.serialize_der()),
        };
        jsonwebtoken::encode(header, claims, &encoding).unwrap()
    }

    fn x5c_header(pki: &Pki) -> Header {
        let mut header = Header::new(Algorithm::ES256);
        header.x5c = Some(vec![base64::engine::general_purpose::STANDARD.encode(&pki.signer_der)]);
        header
    }

    fn tokens(pki: &Pki, jwks: Option<&serde_json::Value>) -> Tokens {
        let dir = tempfile::tempdir().unwrap();
        let roots = dir.path().join("roots.pem");
        std::fs::write(&roots, &pki.root_pem).unwrap();
        let jwks_path = dir.path().join("jwks.json");
        if let Some(jwks) = jwks {
            std::fs::write(&jwks_path, jwks.to_string()).unwrap();
        }
        Tokens::open(ISSUER, SERVICE, Some(&roots), jwks.map(|_| jwks_path.as_path())).unwrap()
    }

    #[test]
    fn an_x5c_chain_to_a_root_verifies_and_its_access_is_read() {
        let pki = pki();
        let tokens = tokens(&pki, None);
        let verified = tokens
            .verify(&sign(&x5c_header(&pki), &claims(json!({})), &pki.signer))
            .unwrap();
        assert_eq!(verified.sub, "alice");
        assert!(verified.access[0].grants("repository", "team/app", "push"));
        assert!(!verified.access[0].grants("repository", "team/app", "delete"));
        assert!(!verified.access[0].grants("repository", "team/other", "pull"));
        // An audience list holding the service is accepted too.
        let listed = claims(json!({"aud": ["elsewhere", SERVICE]}));
        tokens.verify(&sign(&x5c_header(&pki), &listed, &pki.signer)).unwrap();
    }

    #[test]
    fn keys_named_by_kid_verify_from_the_jwks_and_the_root_certificates() {
        let pki = pki();
        let ed = KeyPair::generate_for(&PKCS_ED25519).unwrap();
        let ec = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let url = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let point = ec.public_key_raw();
        let jwks = json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": url(ed.public_key_raw())},
            {"kty": "EC", "crv": "P-256", "kid": "ec", "x": url(&point[1..33]), "y": url(&point[33..])},
        ]});
        let tokens = tokens(&pki, Some(&jwks));
        let with_kid = |alg, kid: &str| {
            let mut header = Header::new(alg);
            header.kid = Some(kid.into());
            header
        };
        tokens
            .verify(&sign(&with_kid(Algorithm::EdDSA, "ed"), &claims(json!({})), &ed))
            .unwrap();
        tokens
            .verify(&sign(&with_kid(Algorithm::ES256, "ec"), &claims(json!({})), &ec))
            .unwrap();
        let root_kid = libtrust_key_id(&pki.root_key.subject_public_key_info());
        tokens
            .verify(&sign(
                &with_kid(Algorithm::ES256, &root_kid),
                &claims(json!({})),
                &pki.root_key,
            ))
            .unwrap();
        // A key under another key's name does not verify.
        let err = tokens
            .verify(&sign(
                &with_kid(Algorithm::ES256, "ec"),
                &claims(json!({})),
                &pki.signer,
            ))
            .unwrap_err();
        assert!(err.contains("InvalidSignature"), "{err}");
        let err = tokens
            .verify(&sign(&with_kid(Algorithm::ES256, "nobody"), &claims(json!({})), &ec))
            .unwrap_err();
        assert!(err.contains("unknown key `nobody`"), "{err}");
    }

    #[test]
    fn rs256_verifies_from_a_jwks_rsa_key() {
        use rustls_pki_types::pem::PemObject as _;
        // A test-only key: ring cannot generate RSA keys.
        let pem = include_bytes!("../../tests/fixtures/token-rsa.pem");
        let pkcs1 = rustls_pki_types::PrivatePkcs1KeyDer::from_pem_slice(pem).unwrap();
        let blocks = simple_asn1::from_der(pkcs1.secret_pkcs1_der()).unwrap();
        let ASN1Block::Sequence(_, fields) = &blocks[0] else {
            panic!("not PKCS#1")
        };
        let component = |index: usize| match &fields[index] {
            ASN1Block::Integer(_, value) => {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_bytes_be().1)
            }
            other => panic!("{other:?}"),
        };
        let jwks = json!({"keys": [{"kty": "RSA", "kid": "rsa", "n": component(1), "e": component(2)}]});
        let tokens = tokens(&pki(), Some(&jwks));
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("rsa".into());
        let key = EncodingKey::from_rsa_der(pkcs1.secret_pkcs1_der());
        let token = jsonwebtoken::encode(&header, &claims(json!({})), &key).unwrap();
        assert_eq!(tokens.verify(&token).unwrap().sub, "alice");
    }

    #[test]
    fn libtrust_key_ids_have_twelve_groups_of_four() {
        let id = libtrust_key_id(b"any key");
        assert_eq!(id.len(), 59, "{id}");
        assert_eq!(id.split(':').count(), 12);
        assert!(id
            .chars()
            .all(|c| c == ':' || c.is_ascii_uppercase() || ('2'..='7').contains(&c)));
    }

    #[test]
    fn every_bad_token_is_refused_with_why() {
        let pki = pki();
        let tokens = tokens(&pki, None);
        let good = |overrides| sign(&x5c_header(&pki), &claims(overrides), &pki.signer);
        let b64 =
            |value: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
        let unsigned = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&claims(json!({})))
        );
        let token = good(json!({}));
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let tampered_claims = format!(
            "{}.{}.{signature}",
            signed.split('.').next().unwrap(),
            b64(&claims(
                json!({"access": [{"type": "repository", "name": "*", "actions": ["*"]}]})
            ))
        );
        let other_root = self::pki();
        let untrusted = sign(&x5c_header(&other_root), &claims(json!({})), &other_root.signer);
        // An HMAC token keyed with the root's public key: no shared secret is
        // ever accepted.
        let mut hmac_header = Header::new(Algorithm::HS256);
        hmac_header.x5c = x5c_header(&pki).x5c;
        let hmac = jsonwebtoken::encode(
            &hmac_header,
            &claims(json!({})),
            &EncodingKey::from_secret(pki.signer.public_key_raw()),
        )
        .unwrap();
        for (token, why) in [
            (unsigned, "not a signed JWT"),
            ("not.a.jwt".to_string(), "not a signed JWT"),
            (String::new(), "not a signed JWT"),
            (good(json!({"exp": now() - 120})), "ExpiredSignature"),
            (good(json!({"nbf": now() + 120})), "ImmatureSignature"),
            (good(json!({"aud": "another-registry"})), "InvalidAudience"),
            (good(json!({"iss": "someone-else"})), "InvalidIssuer"),
            (tampered_claims, "InvalidSignature"),
            (untrusted, "does not chain to a root certificate"),
            (hmac, "shared secret"),
        ] {
            let err = tokens.verify(&token).unwrap_err();
            assert!(err.contains(why), "{token}: {err}, expected {why}");
        }
        // A token within the leeway of its times is still good.
        tokens
            .verify(&good(json!({"exp": now() - 10, "nbf": now() + 10})))
            .unwrap();
        let mut no_exp = claims(json!({}));
        no_exp.as_object_mut().unwrap().remove("exp");
        let err = tokens
            .verify(&sign(&x5c_header(&pki), &no_exp, &pki.signer))
            .unwrap_err();
        assert!(err.contains("exp"), "{err}");
    }

    #[test]
    fn unusable_key_files_are_refused_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = Tokens::open(ISSUER, SERVICE, Some(&missing), None).err().unwrap();
        assert!(err.contains("missing.pem"), "{err}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        let err = Tokens::open(ISSUER, SERVICE, Some(&garbage), None).err().unwrap();
        assert!(err.contains("garbage.pem") && err.contains("no certificate"), "{err}");
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}]}"#).unwrap();
        let err = Tokens::open(ISSUER, SERVICE, None, Some(&jwks)).err().unwrap();
        assert!(err.contains("no `kid`"), "{err}");
        let err = Tokens::open(ISSUER, SERVICE, None, None).err().unwrap();
        assert!(err.contains("rootcertbundle or jwks"), "{err}");
    }
}
