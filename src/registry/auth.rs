//! Registry authentication: `WWW-Authenticate` challenges (Bearer with
//! realm/service/scope, and Basic), bearer tokens fetched from the realm
//! anonymously or with credentials, one token per scope cached until it
//! expires.

use super::credentials::Credential;
use super::error::{RegistryError, error_chain};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::HeaderValue;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How a registry asked to be authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Send `Authorization: Basic` with the credentials.
    Basic,
    /// Fetch a token from `realm` for `service` and send it as Bearer.
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// The access a request needs, e.g. `repository:app:pull,push`; several
/// for a cross-repository mount.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(Vec<String>);

impl Scope {
    /// Pull access to `repository`.
    pub fn pull(repository: &str) -> Self {
        Self(vec![format!("repository:{repository}:pull")])
    }

    /// Pull and push access to `repository`.
    pub fn push(repository: &str) -> Self {
        Self(vec![format!("repository:{repository}:pull,push")])
    }

    /// Push to `repository` and read from `from` (a blob mount).
    pub fn mount(repository: &str, from: &str) -> Self {
        Self(vec![
            format!("repository:{repository}:pull,push"),
            format!("repository:{from}:pull"),
        ])
    }

    /// No repository: the `/v2/` ping.
    pub fn registry() -> Self {
        Self(Vec::new())
    }
}

/// Parses a `WWW-Authenticate` value; unknown schemes are left out.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    Some(Challenge::Bearer {
        realm: get("realm")?,
        service: get("service"),
    })
}

/// `k="v", k2=v2` with quoted strings that may hold commas and escapes.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => value.extend(chars.next()),
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        out.push((key.trim().to_string(), value.trim().to_string()));
    }
}

struct CachedToken {
    header: HeaderValue,
    expires: Instant,
}

/// Produces `Authorization` headers for one registry: remembers the
/// challenge it answered with and caches one bearer token per scope.
pub struct Authenticator {
    registry: String,
    credential: Option<Credential>,
    challenge: Mutex<Option<Challenge>>,
    tokens: Mutex<HashMap<Scope, CachedToken>>,
}

impl Authenticator {
    /// An authenticator for `registry` (named in errors) with optional
    /// credentials.
    pub fn new(registry: &str, credential: Option<Credential>) -> Self {
        Self {
            registry: registry.to_string(),
            credential,
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Whether credentials were configured.
    pub fn has_credential(&self) -> bool {
        self.credential.is_some()
    }

    /// The header for a request needing `scope`, if the registry's challenge
    /// is known and a cached (unexpired) token or basic credential fits.
    pub fn cached_header(&self, scope: &Scope) -> Option<HeaderValue> {
        let challenge = self.challenge.lock().ok()?.clone()?;
        match challenge {
            Challenge::Basic => self.basic_header(),
            Challenge::Bearer { .. } => {
                let tokens = self.tokens.lock().ok()?;
                tokens
                    .get(scope)
                    .filter(|t| t.expires > Instant::now())
                    .map(|t| t.header.clone())
            }
        }
    }

    /// Answers a 401: records the challenge and, for Bearer, fetches a token
    /// for `scope`. Returns the header to retry with, or `None` when there is
    /// nothing new to try.
    pub async fn respond(
        &self,
        http: &reqwest::Client,
        www_authenticate: Option<&str>,
        scope: &Scope,
        sent: Option<&HeaderValue>,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        let Some(challenge) = www_authenticate.and_then(parse_challenge) else {
            return Ok(None);
        };
        if let Ok(mut c) = self.challenge.lock() {
            *c = Some(challenge.clone());
        }
        let header = match challenge {
            Challenge::Basic => self.basic_header(),
            Challenge::Bearer { realm, service } => Some(
                self.fetch_token(http, &realm, service.as_deref(), scope)
                    .await?,
            ),
        };
        Ok(header.filter(|h| Some(h) != sent))
    }

    fn basic_header(&self) -> Option<HeaderValue> {
        match &self.credential {
            Some(Credential::Basic { username, password }) => {
                let mut h = HeaderValue::from_str(&format!(
                    "Basic {}",
                    STANDARD.encode(format!("{username}:{password}"))
                ))
                .ok()?;
                h.set_sensitive(true);
                Some(h)
            }
            _ => None,
        }
    }

    async fn fetch_token(
        &self,
        http: &reqwest::Client,
        realm: &str,
        service: Option<&str>,
        scope: &Scope,
    ) -> Result<HeaderValue, RegistryError> {
        let fail = |reason: String| RegistryError::Auth {
            registry: self.registry.clone(),
            reason,
        };
        let mut url = reqwest::Url::parse(realm)
            .map_err(|e| fail(format!("token realm {realm:?} is not a URL: {e}")))?;
        let request = match &self.credential {
            Some(Credential::IdentityToken(refresh)) => {
                // OAuth2 refresh-token grant, as Docker does for identity tokens.
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("client_id", "builder")
                    .append_pair("refresh_token", refresh);
                if let Some(s) = service {
                    form.append_pair("service", s);
                }
                if !scope.0.is_empty() {
                    form.append_pair("scope", &scope.0.join(" "));
                }
                http.post(url)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(form.finish())
            }
            other => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in &scope.0 {
                        q.append_pair("scope", s);
                    }
                }
                let req = http.get(url);
                match other {
                    Some(Credential::Basic { username, password }) => {
                        req.basic_auth(username, Some(password))
                    }
                    _ => req,
                }
            }
        };
        let response = request
            .send()
            .await
            .map_err(|e| fail(format!("token server {realm}: {}", error_chain(&e))))?;
        let status = response.status();
        if !status.is_success() {
            return Err(fail(format!("token server {realm} answered {status}")));
        }
        #[derive(serde::Deserialize)]
        struct TokenReply {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let reply: TokenReply = response
            .json()
            .await
            .map_err(|e| fail(format!("token server {realm}: unreadable reply: {e}")))?;
        let token = reply
            .token
            .filter(|t| !t.is_empty())
            .or(reply.access_token.filter(|t| !t.is_empty()))
            .ok_or_else(|| fail(format!("token server {realm} sent no token")))?;
        let mut header = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| fail(format!("token server {realm} sent an unusable token")))?;
        header.set_sensitive(true);
        // The spec's default lifetime is 60 s; renew a little early.
        let lifetime = Duration::from_secs(reply.expires_in.unwrap_or(60).max(60));
        let expires = Instant::now() + lifetime.saturating_sub(Duration::from_secs(10));
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(
                scope.clone(),
                CachedToken {
                    header: header.clone(),
                    expires,
                },
            );
        }
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_with_quoted_commas() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
            })
        );
    }

    #[test]
    fn parses_basic_and_rejects_unknown_or_incomplete() {
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge(r#"Bearer service="s""#), None);
        assert_eq!(parse_challenge(""), None);
        assert_eq!(
            parse_params(r#"a="unterminated"#),
            vec![("a".into(), "unterminated".into())]
        );
    }
}
