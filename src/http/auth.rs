//! Bearer-token authentication of the operator API: API tokens against `User.apiTokenSha256`,
//! and JWTs from `Settings.identityServer` (see [`super::oidc`]).
//!
//! An API token itself is never stored, logged or compared: only its SHA-256, in constant time.
//! A bearer is first looked up as an API token; only when none matches and it has the shape of
//! a JWT is it verified against the identity server, so API tokens keep working beside JWTs.

use std::collections::BTreeSet;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};

use crate::config::ConfigSet;
use crate::config::kinds::{Operation, UserSpec};

use super::AppState;
use super::error::ApiError;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The `User`'s name.
    pub user: String,
    /// Its operations and those of its roles.
    pub operations: BTreeSet<Operation>,
}

impl Caller {
    /// 403 unless the caller may do `op`.
    pub fn require(&self, op: Operation) -> Result<(), ApiError> {
        if self.operations.contains(&op) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "user {} lacks the operation {op}",
                self.user
            )))
        }
    }
}

/// Equal-length byte strings compared without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The user whose `apiTokenSha256` lists the hash of `token`, with its effective operations.
pub fn authenticate(set: &ConfigSet, token: &str) -> Option<Caller> {
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    let mut found: Option<(&str, &UserSpec)> = None;
    for (object, user) in set.specs::<UserSpec>() {
        for hash in &user.api_token_sha256 {
            // No early exit: every hash is compared.
            if constant_time_eq(hash.as_str().as_bytes(), digest.as_bytes()) && found.is_none() {
                found = Some((object.name.as_str(), user));
            }
        }
    }
    let (name, _) = found?;
    Some(Caller {
        user: name.to_owned(),
        operations: set.operations(name),
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers)?
            .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <token>`"))?;
        let config = state.engine.config();
        if let Some(caller) = authenticate(&config, token) {
            return Ok(caller);
        }
        let identity_server = config.settings().and_then(|s| s.identity_server.as_ref());
        match identity_server {
            Some(idp) if super::oidc::looks_like_jwt(token) => {
                let email = state
                    .oidc
                    .verify(idp, token)
                    .await
                    .map_err(|rejection| ApiError::unauthorized(rejection.to_string()))?;
                by_email(&config, &email).ok_or_else(|| {
                    tracing::debug!(email = ?email, "identity server token refused: no such user");
                    ApiError::unauthorized(super::oidc::Rejection::NoUser.to_string())
                })
            }
            _ => Err(ApiError::unauthorized("the token is not valid")),
        }
    }
}

/// The configured user whose `email` is `email`, ignoring case, with its effective operations.
pub fn by_email(set: &ConfigSet, email: &str) -> Option<Caller> {
    let (object, _) = set
        .specs::<UserSpec>()
        .find(|(_, user)| user.email.as_str().eq_ignore_ascii_case(email))?;
    Some(Caller {
        user: object.name.clone(),
        operations: set.operations(&object.name),
    })
}

/// The token of the request's one `Authorization: Bearer <token>` header (the scheme in any
/// case, RFC 9110): `None` without the header, 400 when it is given twice, 401 when it is not
/// a bearer token.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::bad_request(
            "the request has more than one Authorization header",
        ));
    }
    value
        .to_str()
        .ok()
        .and_then(|h| h.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .map(Some)
        .ok_or_else(|| ApiError::unauthorized("expected `Authorization: Bearer <token>`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> (tempfile::TempDir, ConfigSet) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("users.yaml"), yaml).expect("write");
        let set = crate::config::load(&[dir.path().to_path_buf()])
            .into_result()
            .expect("valid config");
        (dir, set)
    }

    fn hash(token: &str) -> String {
        hex::encode(Sha256::digest(token.as_bytes()))
    }

    fn users() -> String {
        format!(
            "apiVersion: switchboard/v1\nkind: Role\nmetadata: {{name: admins}}\nspec: {{title: Admins, operations: [CanManageAdministration]}}\n---\n\
             apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: alice}}\nspec:\n  displayName: Alice\n  email: alice@example.com\n  roles: [admins]\n  operations: [CanManageChats]\n  apiTokenSha256: [{}]\n---\n\
             apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: bob}}\nspec:\n  displayName: Bob\n  email: bob@example.com\n  apiTokenSha256: [{}]\n",
            hash("alice-token"),
            hash("bob-token").to_uppercase()
        )
    }

    #[test]
    fn a_token_matches_by_its_sha256_and_gets_its_roles_operations() {
        let (_dir, set) = config(&users());
        let alice = authenticate(&set, "alice-token").expect("alice authenticates");
        assert_eq!(alice.user, "alice");
        assert_eq!(
            alice.operations,
            BTreeSet::from([
                Operation::CanManageChats,
                Operation::CanManageAdministration
            ])
        );
        assert!(alice.require(Operation::CanManageAdministration).is_ok());
    }

    #[test]
    fn upper_case_hashes_match_and_missing_operations_are_forbidden() {
        let (_dir, set) = config(&users());
        let bob = authenticate(&set, "bob-token").expect("bob authenticates");
        assert!(bob.operations.is_empty());
        let denied = bob
            .require(Operation::CanManageAdministration)
            .expect_err("bob is no admin");
        assert_eq!(denied.status(), axum::http::StatusCode::FORBIDDEN);
    }

    #[test]
    fn a_user_is_found_by_email_ignoring_case() {
        let (_dir, set) = config(&users());
        let alice = by_email(&set, "Alice@Example.COM").expect("alice by email");
        assert_eq!(alice.user, "alice");
        assert!(alice.operations.contains(&Operation::CanManageChats));
        assert_eq!(by_email(&set, "carol@example.com"), None);
    }

    #[test]
    fn an_unknown_token_is_rejected() {
        let (_dir, set) = config(&users());
        assert_eq!(authenticate(&set, "nobody"), None);
        assert_eq!(
            authenticate(&set, &hash("alice-token")),
            None,
            "the hash is not the token"
        );
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(header::AUTHORIZATION, v.parse().expect("header value"));
        }
        map
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_one_header_only() {
        assert_eq!(bearer_token(&headers(&[])).expect("no header"), None);
        for value in ["Bearer abc", "bearer abc", "BEARER  abc "] {
            assert_eq!(
                bearer_token(&headers(&[value])).expect("a token"),
                Some("abc"),
                "{value}"
            );
        }
        let twice = bearer_token(&headers(&["Bearer a", "Bearer b"])).expect_err("two headers");
        assert_eq!(twice.status(), axum::http::StatusCode::BAD_REQUEST);
        let basic = bearer_token(&headers(&["Basic abc"])).expect_err("not bearer");
        assert_eq!(basic.status(), axum::http::StatusCode::UNAUTHORIZED);
        assert!(bearer_token(&headers(&["Bearer "])).is_err());
    }

    #[test]
    fn constant_time_eq_needs_equal_bytes_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
