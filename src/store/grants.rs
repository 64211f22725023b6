//! Refused OAuth grants (migration `0015_grant_refusals`, BX-04): the marks of the grant
//! registry (`telemetry::grants`) that outlive the process, for every kind that holds a grant.
//! A row holds the grant's fingerprint and the endpoint's reason, never a token.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::{Store, StoreError, format_ts, parse_ts};

/// One refused grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRefusal {
    /// The kind of the object holding the grant (`Mailbox`, `LinkedInAccount`, ...).
    pub kind: String,
    /// Its name.
    pub name: String,
    /// SHA-256 over what the refused refresh sent (see `telemetry::grants::fingerprint`).
    pub fingerprint: [u8; 32],
    /// What the token endpoint said (`invalid_grant`, ...).
    pub reason: String,
    /// When it was refused.
    pub refused_at: DateTime<Utc>,
}

impl Store {
    /// Every refused grant, by kind and name.
    pub fn grant_refusals(&self) -> Result<Vec<GrantRefusal>, StoreError> {
        type Row = (String, String, String, String, String);
        let read = || -> rusqlite::Result<Vec<Row>> {
            let mut stmt = self.conn.prepare(
                "SELECT kind, name, fingerprint, reason, refused_at FROM grant_refusals
                  ORDER BY kind, name",
            )?;
            stmt.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect()
        };
        read()
            .map_err(|e| self.err(e))?
            .into_iter()
            .map(|(kind, name, print, reason, at)| {
                let fingerprint = hex::decode(&print)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| {
                        self.corrupt(format!(
                            "the refused grant of {kind}/{name} has no valid fingerprint"
                        ))
                    })?;
                Ok(GrantRefusal {
                    refused_at: parse_ts(&at).unwrap_or_default(),
                    kind,
                    name,
                    fingerprint,
                    reason,
                })
            })
            .collect()
    }

    /// Records (or replaces) the refusal of `refusal.kind/name`'s grant.
    pub fn set_grant_refusal(&mut self, refusal: &GrantRefusal) -> Result<(), StoreError> {
        self.ensure_writable()?;
        self.conn
            .execute(
                "INSERT INTO grant_refusals (kind, name, fingerprint, reason, refused_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (kind, name) DO UPDATE SET
                        fingerprint = excluded.fingerprint,
                        reason = excluded.reason,
                        refused_at = excluded.refused_at",
                params![
                    refusal.kind,
                    refusal.name,
                    hex::encode(refusal.fingerprint),
                    refusal.reason,
                    format_ts(refusal.refused_at)
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The grant of `kind/name` is healthy again (refreshed, consented): its mark goes.
    pub fn clear_grant_refusal(&mut self, kind: &str, name: &str) -> Result<(), StoreError> {
        self.ensure_writable()?;
        self.conn
            .execute(
                "DELETE FROM grant_refusals WHERE kind = ?1 AND name = ?2",
                params![kind, name],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}

/// The object `kind/name` left the config (in the apply's transaction): its grant's refusal
/// mark goes, and a LinkedInAccount's sealed tokens with it.
pub(super) fn forget_object(conn: &Connection, kind: &str, name: &str) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM grant_refusals WHERE kind = ?1 AND name = ?2",
        params![kind, name],
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ObjectChange;

    fn refusal(kind: &str, name: &str, print: u8) -> GrantRefusal {
        GrantRefusal {
            kind: kind.into(),
            name: name.into(),
            fingerprint: [print; 32],
            reason: "invalid_grant".into(),
            refused_at: "2026-12-01T10:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn refusals_are_kept_replaced_cleared_and_go_with_their_object() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .set_grant_refusal(&refusal("Mailbox", "sales", 1))
            .unwrap();
        store
            .set_grant_refusal(&refusal("LinkedInAccount", "ava", 2))
            .unwrap();
        store
            .set_grant_refusal(&refusal("LinkedInAccount", "ava", 3))
            .unwrap();
        assert_eq!(
            store.grant_refusals().unwrap(),
            vec![
                refusal("LinkedInAccount", "ava", 3),
                refusal("Mailbox", "sales", 1)
            ]
        );
        store.clear_grant_refusal("Mailbox", "sales").unwrap();
        assert_eq!(store.grant_refusals().unwrap().len(), 1);

        let at = "2026-12-01T10:00:00Z".parse().unwrap();
        let account = |op: &str| match op {
            "upsert" => ObjectChange::Upsert {
                kind: "LinkedInAccount".into(),
                name: "ava".into(),
                spec: serde_json::json!({"user": "ava"}),
            },
            _ => ObjectChange::Delete {
                kind: "LinkedInAccount".into(),
                name: "ava".into(),
            },
        };
        store.apply(&[account("upsert")], at).unwrap();
        let tokens = crate::store::mail::OAuthTokens {
            access_token: Some(vec![1, 2, 3]),
            expires_at: None,
            refresh_token: Some(vec![4, 5, 6]),
        };
        store
            .set_mail_oauth_tokens("LinkedInAccount/ava", &tokens, at)
            .unwrap();
        store.set_mail_oauth_tokens("ava", &tokens, at).unwrap();
        store.apply(&[account("delete")], at).unwrap();
        assert_eq!(store.grant_refusals().unwrap(), vec![]);
        assert_eq!(
            store.mail_oauth_tokens("LinkedInAccount/ava").unwrap(),
            None,
            "the removed account's sealed tokens are deleted"
        );
        assert!(
            store.mail_oauth_tokens("ava").unwrap().is_some(),
            "a mailbox's grant of the same name stays"
        );
    }
}
