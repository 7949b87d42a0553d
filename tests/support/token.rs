//! A Docker Hub–style token server for the registry's `auth: token` mode:
//! `GET /token?service=…&scope=…` answers a JWT signed (ES256) by a key the
//! test generates, with the certificate in the `x5c` header so that the
//! registry can check it against its `rootcertbundle`.

use super::http::{Request, Response, TestServer};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// The `service` the registry names in its challenge.
pub const SERVICE: &str = "builder-test-registry";
/// The `iss` the registry expects in tokens.
pub const ISSUER: &str = "builder-test-issuer";

/// A running token server; grants every requested action to its one user,
/// nothing to anonymous clients, and 401 to wrong credentials.
pub struct TokenServer {
    server: TestServer,
    cert_pem: String,
    pub user: String,
    pub password: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl TokenServer {
    /// Generates a signing key and certificate and starts serving.
    pub fn start(user: &str, password: &str) -> Self {
        let certified = rcgen::generate_simple_self_signed(vec!["token-issuer".to_string()])
            .expect("generate a token-signing certificate");
        let cert_der = certified.cert.der().to_vec();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &certified.signing_key.serialize_der(),
            &SystemRandom::new(),
        )
        .expect("load the generated P-256 key");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let basic = format!(
            "Basic {}",
            STANDARD.encode(format!("{user}:{password}").as_bytes())
        );
        let seen = requests.clone();
        let server = TestServer::start(move |req: &Request| {
            seen.lock().expect("token log lock").push(req.clone());
            let granted = match req.header("authorization") {
                None => false,
                Some(h) if h == basic => true,
                Some(_) => {
                    return Response::new(401).json(&json!({"details": "wrong credentials"}));
                }
            };
            let token = sign(&key, &cert_der, req, granted);
            // Only `access_token`, as some registries answer: the client must
            // read both spellings.
            Response::new(200).json(&json!({"access_token": token, "expires_in": 300}))
        });
        Self {
            server,
            cert_pem: certified.cert.pem(),
            user: user.to_string(),
            password: password.to_string(),
            requests,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The PEM certificate the registry trusts.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The requests served so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("token log lock").clone()
    }
}

/// A JWT granting the requested scopes (or none) for five minutes.
fn sign(key: &EcdsaKeyPair, cert_der: &[u8], req: &Request, granted: bool) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let access: Vec<_> = if granted {
        req.query("scope")
            .iter()
            .flat_map(|s| s.split(' ').map(str::to_string).collect::<Vec<_>>())
            .filter_map(|scope| {
                let mut parts = scope.splitn(3, ':');
                let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect()
    } else {
        Vec::new()
    };
    let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [STANDARD.encode(cert_der)]});
    let claims = json!({
        "iss": ISSUER,
        "sub": if granted { "tester" } else { "" },
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now.saturating_sub(10),
        "iat": now,
        "jti": format!("{now}-{}", req.target.len()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key
        .sign(&SystemRandom::new(), signing_input.as_bytes())
        .expect("ECDSA signing");
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    )
}
