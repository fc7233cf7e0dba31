//! A small token server for the token-auth tests, as the Docker registry
//! token specification has one: `GET /token?service=..&scope=..` with HTTP
//! Basic credentials answers a JWT granting what the user may of the
//! scopes asked. Tokens are ES256, signed by a certificate a test CA issued
//! and carried in `x5c`; the CA is the registry's `rootcertbundle`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256};
use serde_json::{json, Value};

pub const ISSUER: &str = "berth-test-issuer";
pub const SERVICE: &str = "berth-test";

/// What a user may do: repository name prefix to actions.
pub type Policy = HashMap<&'static str, (&'static str, Vec<(&'static str, Vec<&'static str>)>)>;

/// A running token server on 127.0.0.1; it stops with the test process.
pub struct TokenServer {
    pub realm: String,
    /// The PEM file of the CA that issued the signing certificate.
    pub roots: PathBuf,
    signer: Arc<Signer>,
    /// Tokens issued so far.
    issued: Arc<AtomicUsize>,
}

/// A signing key and its certificate chain.
pub struct Signer {
    key: KeyPair,
    x5c: Vec<String>,
}

impl Signer {
    /// A token with these claims, signed with the certificate's key.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.x5c = Some(self.x5c.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.key.serialize_der())).expect("sign")
    }
}

/// Claims for `sub` granting `access`, valid from a minute ago for five.
pub fn claims(sub: &str, access: Value) -> Value {
    let now = jsonwebtoken::get_current_timestamp();
    json!({
        "iss": ISSUER, "aud": SERVICE, "sub": sub,
        "iat": now - 60, "nbf": now - 60, "exp": now + 300,
        "access": access,
    })
}

impl TokenServer {
    /// Serves `policy`: user to (password, [(repository prefix, actions)]);
    /// the CA is written to `dir`.
    pub fn start(dir: &Path, policy: Policy) -> TokenServer {
        let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let roots = dir.join("token-roots.pem");
        std::fs::write(&roots, ca.pem()).expect("roots");
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("signing key");
        let certificate = CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .signed_by(&key, &Issuer::new(ca_params, &ca_key))
            .expect("signing certificate");
        let x5c = vec![base64::engine::general_purpose::STANDARD.encode(certificate.der())];
        let signer = Arc::new(Signer { key, x5c });
        let issued = Arc::new(AtomicUsize::new(0));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let realm = format!("http://{}/token", listener.local_addr().expect("addr"));
        let (serving, counting) = (signer.clone(), issued.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (signer, issued, policy) = (serving.clone(), counting.clone(), policy.clone());
                std::thread::spawn(move || answer(stream, &signer, &issued, &policy));
            }
        });
        TokenServer {
            realm,
            roots,
            signer,
            issued,
        }
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }

    /// The `auth.token` section for this server.
    pub fn yaml(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.realm,
            self.roots.display()
        )
    }
}

/// One request: read the query and the credentials, answer a token.
fn answer(mut stream: std::net::TcpStream, signer: &Signer, issued: &AtomicUsize, policy: &Policy) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split(' ').nth(1).unwrap_or("").to_string();
    let mut authorization = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_string());
            }
        }
    }
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let params: Vec<(String, String)> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();
    let user = authorization
        .and_then(|value| value.strip_prefix("Basic ").map(str::to_string))
        .and_then(|encoded| base64::engine::general_purpose::STANDARD.decode(encoded).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|pair| pair.split_once(':').map(|(u, p)| (u.to_string(), p.to_string())));
    let grants = match &user {
        Some((name, password)) => match policy.get(name.as_str()) {
            Some((expected, grants)) if expected == password => Some(grants.clone()),
            _ => None,
        },
        None => policy.get("").map(|(_, grants)| grants.clone()),
    };
    let Some(grants) = grants else {
        let _ = stream.write_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        return;
    };
    let mut access = Vec::new();
    for (_, scope) in params.iter().filter(|(k, _)| k == "scope") {
        let mut parts = scope.splitn(3, ':');
        let (Some(kind), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let allowed: Vec<&str> = actions
            .split(',')
            .filter(|action| {
                grants.iter().any(|(prefix, granted)| {
                    let resource = format!("{kind}:{name}");
                    resource.starts_with(prefix) && granted.contains(action)
                })
            })
            .collect();
        access.push(json!({"type": kind, "name": name, "actions": allowed}));
    }
    let sub = user.map(|(name, _)| name).unwrap_or_default();
    let token = signer.sign(&claims(&sub, Value::Array(access)));
    issued.fetch_add(1, Ordering::SeqCst);
    let body = json!({"token": token, "access_token": token, "expires_in": 300}).to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Percent-decoding of a query value (`+` is a space).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
