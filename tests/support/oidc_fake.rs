//! A fake OpenID Connect issuer (Keycloak / Entra ID / Google wire format) for the identity
//! server tests: an axum server on a free loopback port.
//!
//! - `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0): `issuer` (the
//!   fake's base URL) and `jwks_uri`, plus the endpoints a real issuer lists.
//! - `GET /jwks` (RFC 7517): the public halves of the keys the fake publishes, counted, so a
//!   test can tell how often the daemon asked.
//!
//! Keys are made in the test: RSA 2048 by `openssl genpkey` (ring cannot generate RSA keys; the
//! suite already needs openssl for Dovecot's certificates) and P-256 by ring. Tokens are signed
//! with ring (RS256: RSASSA-PKCS1-v1_5 SHA-256; ES256: fixed-length r‖s, RFC 7518 §3.4).

// Each test binary uses a different part of the fake.
#![allow(dead_code)]

use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

/// A signing key made in the test, with its `kid`.
pub struct SigningKey {
    pub kid: String,
    key: Material,
}

enum Material {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl SigningKey {
    /// A fresh RSA 2048 key (RS256).
    pub fn rsa(kid: &str) -> SigningKey {
        let output = Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-outform",
                "DER",
            ])
            .output()
            .expect("run openssl genpkey");
        assert!(output.status.success(), "openssl genpkey failed");
        // OpenSSL 3.0 writes DER as PKCS#1 RSAPrivateKey, later releases as PKCS#8.
        let pair = RsaKeyPair::from_pkcs8(&output.stdout)
            .or_else(|_| RsaKeyPair::from_der(&output.stdout))
            .expect("an RSA private key in DER");
        SigningKey {
            kid: kid.into(),
            key: Material::Rsa(pair),
        }
    }

    /// A fresh P-256 key (ES256).
    pub fn ec(kid: &str) -> SigningKey {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("generate P-256");
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("P-256 key");
        SigningKey {
            kid: kid.into(),
            key: Material::Ec(pair),
        }
    }

    /// The JWS `alg` this key signs with.
    pub fn alg(&self) -> &'static str {
        match self.key {
            Material::Rsa(_) => "RS256",
            Material::Ec(_) => "ES256",
        }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        match &self.key {
            Material::Rsa(pair) => {
                let parts = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                json!({
                    "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                    "n": URL_SAFE_NO_PAD.encode(&parts.n),
                    "e": URL_SAFE_NO_PAD.encode(&parts.e),
                })
            }
            Material::Ec(pair) => {
                let point = pair.public_key().as_ref();
                json!({
                    "kty": "EC", "use": "sig", "alg": "ES256", "crv": "P-256", "kid": self.kid,
                    "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
                })
            }
        }
    }

    /// The public key's bytes as an attacker could read them from the JWKS (RSA: the modulus).
    pub fn public_bytes(&self) -> Vec<u8> {
        match &self.key {
            Material::Rsa(pair) => {
                signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public()).n
            }
            Material::Ec(pair) => pair.public_key().as_ref().to_vec(),
        }
    }

    /// A compact JWS of `claims` signed with this key, its `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": self.alg(), "typ": "JWT", "kid": self.kid});
        let input = signing_input(&header, claims);
        let rng = SystemRandom::new();
        let sig = match &self.key {
            Material::Rsa(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut sig,
                )
                .expect("RSA sign");
                sig
            }
            Material::Ec(pair) => pair
                .sign(&rng, input.as_bytes())
                .expect("ECDSA sign")
                .as_ref()
                .to_vec(),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

/// `base64url(header).base64url(claims)`.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// The fake's state, shared with the test.
pub struct Inner {
    /// The published keys' JWKs.
    pub jwks: Vec<Value>,
    /// How many times `/jwks` was fetched.
    pub jwks_fetches: usize,
    /// How many times the discovery document was fetched.
    pub discovery_fetches: usize,
}

/// A running fake issuer.
pub struct OidcFake {
    /// `http://127.0.0.1:PORT`: the issuer URL.
    pub base: String,
    pub state: Arc<Mutex<Inner>>,
}

impl OidcFake {
    /// Starts an issuer publishing `keys`.
    pub async fn start(keys: &[&SigningKey]) -> OidcFake {
        let state = Arc::new(Mutex::new(Inner {
            jwks: keys.iter().map(|k| k.jwk()).collect(),
            jwks_fetches: 0,
            discovery_fetches: 0,
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state((base.clone(), Arc::clone(&state)));
        tokio::spawn(async move { axum::serve(listener, app).await });
        OidcFake { base, state }
    }

    /// Replaces the published keys (a key rotation).
    pub fn publish(&self, keys: &[&SigningKey]) {
        self.state.lock().expect("fake state").jwks = keys.iter().map(|k| k.jwk()).collect();
    }

    /// How many times the key set was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.state.lock().expect("fake state").jwks_fetches
    }
}

type Shared = (String, Arc<Mutex<Inner>>);

async fn discovery(State((base, state)): State<Shared>) -> Json<Value> {
    state.lock().expect("fake state").discovery_fetches += 1;
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/auth"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    }))
}

async fn jwks(State((_, state)): State<Shared>) -> Json<Value> {
    let mut s = state.lock().expect("fake state");
    s.jwks_fetches += 1;
    Json(json!({ "keys": s.jwks }))
}
