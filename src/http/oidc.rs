//! JWTs from `Settings.identityServer` (an OIDC issuer) as operator API credentials.
//!
//! The issuer's discovery document (`{url}/.well-known/openid-configuration`) and its key set
//! (`jwks_uri`) are fetched on first use and cached. A token whose `kid` the cache does not know
//! makes one refresh of the key set — at most one every [`REFRESH_COOLDOWN`], so a flood of
//! forged `kid`s costs the issuer one request, not one each — and the cache is refreshed anyway
//! after [`MAX_AGE`]. Accepted: RS256 and ES256 signatures; `iss` equal to the discovered issuer,
//! `aud` containing `clientId`, `exp` (required) and `nbf` within [`LEEWAY`] of the daemon's
//! [`Clock`]. The user is the configured `User` whose `email` equals the `email` claim, ignoring
//! case (and a token that says `email_verified: false` is refused). Everything else — `alg:
//! none`, HS*, unknown algorithms, unknown keys, bad signatures — is a [`Rejection`], which the
//! caller turns into a 401.
//!
//! Signatures are verified with `ring` directly (already in the tree for rustls): two
//! algorithms need little code, and no JWT library decides for us which `alg`s to trust.
//! Neither the token nor the client secret is logged; rejections are logged at debug with the
//! reason and the token's header and claims values escaped (`?`), never the token.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::config::kinds::IdentityServerSettings;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(60);
/// The shortest time between two fetches from the issuer (a refresh for an unknown `kid`, or a
/// retry after a failed fetch).
pub const REFRESH_COOLDOWN: Duration = Duration::from_secs(5);
/// A cached key set is refreshed on its next use after this long.
pub const MAX_AGE: Duration = Duration::from_secs(3600);
/// How long a request to the issuer may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Larger discovery documents or key sets are refused.
const MAX_DOCUMENT: usize = 256 * 1024;

/// Why a token was refused. Its `Display` is the client's message: it names the check that
/// failed and echoes nothing of the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Not three base64url parts with JSON header and claims.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// `alg` is not RS256 or ES256 (`none`, HS256, …).
    #[error("the token's signing algorithm is not accepted")]
    Algorithm,
    /// No key of the issuer has the token's `kid` and algorithm.
    #[error("the token's signing key is not known to the identity server")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature is not valid")]
    Signature,
    /// `iss` is not the issuer's.
    #[error("the token was not issued by the configured identity server")]
    Issuer,
    /// `aud` does not contain the client ID.
    #[error("the token is not meant for this application")]
    Audience,
    /// `exp` is missing or past.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// No `email`, or `email_verified: false`.
    #[error("the token carries no verified email")]
    NoEmail,
    /// No configured `User` has the token's email.
    #[error("no user is configured for the token's email")]
    NoUser,
    /// The issuer's discovery or keys could not be read.
    #[error("the identity server could not be reached to verify the token")]
    Unavailable,
}

/// Whether `token` has the shape of a JWS compact serialization: three base64url parts whose
/// first decodes to a JSON object with an `alg`.
pub fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|h| h.get("alg").is_some())
}

/// Verifies identity-server tokens; holds the issuer's cached metadata and keys. One per daemon.
pub struct Verifier {
    http: reqwest::Client,
    clock: Clock,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    /// The issuer URL the rest was fetched for (a reload may change it).
    url: Option<String>,
    issuer: Option<String>,
    jwks_uri: Option<String>,
    keys: Vec<Key>,
    /// When the key set was last fetched successfully.
    fetched: Option<Instant>,
    /// When the issuer was last asked (successfully or not).
    attempted: Option<Instant>,
}

#[derive(Clone)]
struct Key {
    kid: Option<String>,
    material: Material,
}

#[derive(Clone)]
enum Material {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed P-256 point `04 || x || y`.
    P256(Vec<u8>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Alg {
    Rs256,
    Es256,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl Verifier {
    /// A verifier reading time from `clock`.
    pub fn new(clock: Clock) -> Verifier {
        let http = crate::net::http_client_builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client with rustls (ring) builds");
        Verifier {
            http,
            clock,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// The `email` claim of `token` once every check passes.
    pub async fn verify(
        &self,
        settings: &IdentityServerSettings,
        token: &str,
    ) -> Result<String, Rejection> {
        let mut parts = token.split('.');
        let (Some(h64), Some(c64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Rejection::Malformed);
        };
        let header: Header = decode_json(h64)?;
        let alg = match header.alg.as_str() {
            "RS256" => Alg::Rs256,
            "ES256" => Alg::Es256,
            other => {
                tracing::debug!(alg = ?other, "identity server token refused: algorithm");
                return Err(Rejection::Algorithm);
            }
        };
        let claims: Value = decode_json(c64)?;
        let signature = URL_SAFE_NO_PAD
            .decode(s64)
            .map_err(|_| Rejection::Malformed)?;
        let signed = &token.as_bytes()[..h64.len() + 1 + c64.len()];

        let (issuer, keys) = self.keys(settings, header.kid.as_deref(), alg).await?;
        if keys.is_empty() {
            tracing::debug!(kid = ?header.kid, ?alg, "identity server token refused: unknown key");
            return Err(Rejection::UnknownKey);
        }
        if !keys.iter().any(|k| k.verifies(alg, signed, &signature)) {
            tracing::debug!(kid = ?header.kid, ?alg, "identity server token refused: signature");
            return Err(Rejection::Signature);
        }
        check_claims(&claims, &issuer, &settings.client_id, self.clock.now())
    }

    /// The discovered issuer and the cached keys usable for a token with `kid` and `alg`,
    /// fetching or refreshing within the cooldown.
    async fn keys(
        &self,
        settings: &IdentityServerSettings,
        kid: Option<&str>,
        alg: Alg,
    ) -> Result<(String, Vec<Key>), Rejection> {
        let url = settings.url.as_str().trim_end_matches('/').to_owned();
        let mut cache = self.cache.lock().await;
        if cache.url.as_deref() != Some(url.as_str()) {
            *cache = Cache {
                url: Some(url.clone()),
                ..Cache::default()
            };
        }
        let now = Instant::now();
        let stale = cache.fetched.is_none_or(|t| now - t >= MAX_AGE);
        let missing = cache.matching(kid, alg).is_empty();
        let may_ask = cache.attempted.is_none_or(|t| now - t >= REFRESH_COOLDOWN);
        if (stale || missing) && may_ask {
            cache.attempted = Some(now);
            if let Err(reason) = self.refresh(&url, &mut cache).await {
                tracing::warn!(
                    issuer = ?url,
                    reason = ?reason,
                    "cannot read the identity server's discovery or keys"
                );
            }
        }
        let Some(issuer) = cache.issuer.clone() else {
            return Err(Rejection::Unavailable);
        };
        Ok((issuer, cache.matching(kid, alg)))
    }

    /// Fetches the discovery document (once per issuer) and the key set.
    async fn refresh(&self, url: &str, cache: &mut Cache) -> Result<(), String> {
        if cache.jwks_uri.is_none() {
            let discovery: Discovery = serde_json::from_slice(
                &self
                    .get(&format!("{url}/.well-known/openid-configuration"))
                    .await?,
            )
            .map_err(|e| format!("discovery document: {e}"))?;
            // OpenID Connect Discovery 1.0 §4.3: the issuer must be the URL it was read from.
            if discovery.issuer.trim_end_matches('/') != url {
                return Err(format!(
                    "the discovery document names the issuer {:?}, not the configured url",
                    discovery.issuer
                ));
            }
            let jwks =
                url::Url::parse(&discovery.jwks_uri).map_err(|e| format!("jwks_uri: {e}"))?;
            let configured = url::Url::parse(url).map_err(|e| format!("url: {e}"))?;
            if jwks.scheme() != "https" && jwks.scheme() != configured.scheme() {
                return Err("the jwks_uri is not https".into());
            }
            cache.issuer = Some(discovery.issuer);
            cache.jwks_uri = Some(discovery.jwks_uri);
        }
        let jwks_uri = cache.jwks_uri.clone().expect("set above");
        let set: Value = serde_json::from_slice(&self.get(&jwks_uri).await?)
            .map_err(|e| format!("key set: {e}"))?;
        let keys = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("the key set has no `keys`")?;
        cache.keys = keys.iter().filter_map(Key::from_jwk).collect();
        cache.fetched = Some(Instant::now());
        tracing::debug!(keys = cache.keys.len(), "identity server keys fetched");
        Ok(())
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("GET {url:?}: {}", e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("GET {url:?}: {}", response.status()));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("GET {url:?}: {}", e.without_url()))?;
        if body.len() > MAX_DOCUMENT {
            return Err(format!("GET {url:?}: larger than {MAX_DOCUMENT} bytes"));
        }
        Ok(body.to_vec())
    }
}

impl Cache {
    fn matching(&self, kid: Option<&str>, alg: Alg) -> Vec<Key> {
        self.keys
            .iter()
            .filter(|k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
            .filter(|k| {
                matches!(
                    (&k.material, alg),
                    (Material::Rsa { .. }, Alg::Rs256) | (Material::P256(_), Alg::Es256)
                )
            })
            .cloned()
            .collect()
    }
}

impl Key {
    /// A signing key of the set (RFC 7517); encryption keys and other types are skipped.
    fn from_jwk(jwk: &Value) -> Option<Key> {
        let field = |name: &str| jwk.get(name).and_then(Value::as_str);
        let bytes = |name: &str| field(name).and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
        if field("use").is_some_and(|u| u != "sig") {
            return None;
        }
        let material = match (field("kty")?, field("alg")) {
            ("RSA", None | Some("RS256")) => Material::Rsa {
                n: bytes("n")?,
                e: bytes("e")?,
            },
            ("EC", None | Some("ES256")) if field("crv") == Some("P-256") => {
                let (x, y) = (bytes("x")?, bytes("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return None;
                }
                let mut point = vec![4u8];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Material::P256(point)
            }
            _ => return None,
        };
        Some(Key {
            kid: field("kid").map(str::to_owned),
            material,
        })
    }

    fn verifies(&self, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
        use ring::signature;
        match (&self.material, alg) {
            (Material::Rsa { n, e }, Alg::Rs256) => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            (Material::P256(point), Alg::Es256) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, signature)
                    .is_ok()
            }
            _ => false,
        }
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, Rejection> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Rejection::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| Rejection::Malformed)
}

/// `iss`, `aud`, `exp`, `nbf` and `email` of a token whose signature verified.
fn check_claims(
    claims: &Value,
    issuer: &str,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<String, Rejection> {
    let iss = claims.get("iss").and_then(Value::as_str);
    if iss != Some(issuer) {
        tracing::debug!(iss = ?iss, "identity server token refused: issuer");
        return Err(Rejection::Issuer);
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == client_id,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    };
    if !aud_ok {
        tracing::debug!(aud = ?claims.get("aud"), "identity server token refused: audience");
        return Err(Rejection::Audience);
    }
    let leeway = LEEWAY.as_secs_f64();
    let now = now.timestamp_millis() as f64 / 1000.0;
    match claims.get("exp").and_then(Value::as_f64) {
        Some(exp) if now <= exp + leeway => {}
        exp => {
            tracing::debug!(exp = ?exp, now, "identity server token refused: expired");
            return Err(Rejection::Expired);
        }
    }
    if let Some(nbf) = claims.get("nbf") {
        match nbf.as_f64() {
            Some(nbf) if now + leeway >= nbf => {}
            _ => {
                tracing::debug!(nbf = ?nbf, now, "identity server token refused: not yet valid");
                return Err(Rejection::NotYetValid);
            }
        }
    }
    if claims.get("email_verified").and_then(Value::as_bool) == Some(false) {
        tracing::debug!("identity server token refused: email not verified");
        return Err(Rejection::NoEmail);
    }
    match claims.get("email").and_then(Value::as_str) {
        Some(email) if !email.is_empty() => Ok(email.to_owned()),
        _ => {
            tracing::debug!("identity server token refused: no email claim");
            Err(Rejection::NoEmail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISS: &str = "https://id.example.com";

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("timestamp")
    }

    fn claims(extra: Value) -> Value {
        let mut c =
            json!({"iss": ISS, "aud": "switchboard", "exp": 1000, "email": "a@example.com"});
        for (k, v) in extra.as_object().expect("object") {
            c[k] = v.clone();
        }
        c
    }

    #[test]
    fn exp_and_nbf_have_a_minute_of_leeway() {
        let ok = |c: Value, now| check_claims(&c, ISS, "switchboard", at(now));
        assert_eq!(ok(claims(json!({})), 1060), Ok("a@example.com".into()));
        assert_eq!(ok(claims(json!({})), 1061), Err(Rejection::Expired));
        assert_eq!(
            ok(claims(json!({"nbf": 560})), 500),
            Ok("a@example.com".into())
        );
        assert_eq!(
            ok(claims(json!({"nbf": 561})), 500),
            Err(Rejection::NotYetValid)
        );
        assert_eq!(
            ok(json!({"iss": ISS, "aud": "switchboard"}), 0),
            Err(Rejection::Expired)
        );
    }

    #[test]
    fn audience_may_be_a_list_and_issuer_is_exact() {
        let check = |c: Value| check_claims(&c, ISS, "switchboard", at(0));
        assert!(check(claims(json!({"aud": ["other", "switchboard"]}))).is_ok());
        assert_eq!(
            check(claims(json!({"aud": ["other"]}))),
            Err(Rejection::Audience)
        );
        assert_eq!(
            check(claims(json!({"iss": "https://id.example.com/"}))),
            Err(Rejection::Issuer)
        );
        assert_eq!(
            check(claims(json!({"email_verified": false}))),
            Err(Rejection::NoEmail)
        );
    }

    #[test]
    fn only_compact_jws_with_an_alg_looks_like_a_jwt() {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#);
        assert!(looks_like_jwt(&format!("{h}.e30.c2ln")));
        assert!(!looks_like_jwt("an-api-token"));
        assert!(!looks_like_jwt("a.b.c"));
        assert!(!looks_like_jwt(&format!("{h}.e30.c2ln.x")));
    }
}
