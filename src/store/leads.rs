//! LinkedIn lead generation's tables (migration `0011_linkedin`): the durable queue of lead
//! notifications the webhook stores before answering, the creation of a lead with its contact
//! and duplicate link in one transaction, and each integration's log (LI-08).

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde_json::{Map, Value};

use super::records::{ChangeOp, RecordKind, Sighting, journal, resolve_contact};
use super::{Store, StoreError, db_error, format_ts, parse_ts};

/// A stored notification whose lead is not made yet.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingNotification {
    /// Its row id.
    pub id: i64,
    /// The form response's URN (`urn:li:leadGenFormResponse:...`).
    pub response: String,
    /// The form's URN, when the notification named it.
    pub form: Option<String>,
    /// How many runs failed on it.
    pub attempts: i64,
}

/// A form response mapped to a lead, with the person it names.
#[derive(Debug, Clone)]
pub struct LinkedInLead {
    /// The `LeadIntegration`.
    pub integration: String,
    /// The form id.
    pub form: String,
    /// LinkedIn's id of the form response.
    pub linkedin_lead_id: String,
    /// When it was submitted.
    pub submitted_at: DateTime<Utc>,
    /// The mapped columns.
    pub columns: Map<String, Value>,
    /// The person's name, when the form gave one.
    pub name: Option<String>,
    /// Addresses, normalised.
    pub emails: Vec<String>,
    /// Phones, normalised.
    pub phones: Vec<String>,
}

/// What creating a lead did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeadOutcome {
    /// The lead's id (the earlier one when it existed).
    pub id: i64,
    /// Whether it is new.
    pub created: bool,
    /// Its contact.
    pub contact_id: Option<i64>,
    /// The earlier lead of the same person and form, if any.
    pub duplicate_of: Option<i64>,
}

/// One entry of an integration's log.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadLogEntry {
    /// Its id (newer entries have larger ids).
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// A fixed word: `lead-created`, `duplicate`, `skipped`, `fetch-error`, `token-error`,
    /// `gave-up`.
    pub event: String,
    /// What happened, without secrets.
    pub message: String,
    /// The lead it concerns.
    pub lead_id: Option<i64>,
}

impl Store {
    /// Stores a lead notification once per `(integration, response)`; `true` when new.
    pub fn record_linkedin_notification(
        &mut self,
        integration: &str,
        response: &str,
        form: Option<&str>,
        body: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.ensure_writable()?;
        self.conn
            .execute(
                "INSERT INTO linkedin_notifications (integration, response, form, body, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (integration, response) DO NOTHING",
                params![integration, response, form, body, format_ts(at)],
            )
            .map(|n| n == 1)
            .map_err(|e| self.err(e))
    }

    /// The notifications of `integration` not done yet, oldest first.
    pub fn pending_linkedin_notifications(
        &self,
        integration: &str,
    ) -> Result<Vec<PendingNotification>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, response, form, attempts FROM linkedin_notifications
                 WHERE integration = ?1 AND done_at IS NULL ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map(params![integration], |r| {
            Ok(PendingNotification {
                id: r.get(0)?,
                response: r.get(1)?,
                form: r.get(2)?,
                attempts: r.get(3)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.err(e))
    }

    /// Marks notification `id` done (`error: None`; an earlier error stays for the record) or
    /// counts a failed attempt with its error.
    pub fn finish_linkedin_notification(
        &mut self,
        id: i64,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.ensure_writable()?;
        let result = match error {
            None => self.conn.execute(
                "UPDATE linkedin_notifications SET done_at = ?2 WHERE id = ?1",
                params![id, format_ts(at)],
            ),
            Some(error) => self.conn.execute(
                "UPDATE linkedin_notifications SET attempts = attempts + 1, last_error = ?2
                 WHERE id = ?1",
                params![id, error],
            ),
        };
        result.map(drop).map_err(|e| self.err(e))
    }

    /// Creates the lead of a form response once per `(integration, linkedinLeadId)`: finds or
    /// creates its contact (origin `LeadIntegration/NAME`), links it to an earlier lead of the
    /// same contact and form (`duplicateOf`), journals it and logs it, in one transaction.
    /// A response already stored changes nothing and answers the earlier lead.
    pub fn create_linkedin_lead(
        &mut self,
        lead: &LinkedInLead,
        at: DateTime<Utc>,
    ) -> Result<LeadOutcome, StoreError> {
        self.ensure_writable()?;
        let at_text = format_ts(at);
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_error(&path, e))?;
        let existing: Option<(i64, Option<i64>, Option<i64>)> = tx
            .query_row(
                "SELECT id, contact_id, duplicate_of FROM leads
                 WHERE integration = ?1 AND linkedin_lead_id = ?2",
                params![lead.integration, lead.linkedin_lead_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| db_error(&path, e))?;
        if let Some((id, contact_id, duplicate_of)) = existing {
            return Ok(LeadOutcome {
                id,
                created: false,
                contact_id,
                duplicate_of,
            });
        }
        let origin = format!("LeadIntegration/{}", lead.integration);
        let contact_id = if lead.emails.is_empty() && lead.phones.is_empty() {
            None
        } else {
            let sighting = Sighting {
                origin: &origin,
                name: lead.name.as_deref(),
                emails: lead.emails.clone(),
                phones: lead.phones.clone(),
                linked: None,
            };
            Some(resolve_contact(&tx, &sighting, &at_text).map_err(|e| db_error(&path, e))?)
        };
        let duplicate_of: Option<i64> = match contact_id {
            Some(contact) => tx
                .query_row(
                    "SELECT id FROM leads WHERE contact_id = ?1 AND form = ?2
                     ORDER BY submitted_at, id LIMIT 1",
                    params![contact, lead.form],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| db_error(&path, e))?,
            None => None,
        };
        let id: i64 = tx
            .query_row(
                "INSERT INTO leads (integration, form, linkedin_lead_id, submitted_at, columns,
                                    contact_id, duplicate_of, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
                params![
                    lead.integration,
                    lead.form,
                    lead.linkedin_lead_id,
                    format_ts(lead.submitted_at),
                    Value::Object(lead.columns.clone()).to_string(),
                    contact_id,
                    duplicate_of,
                    at_text
                ],
                |r| r.get(0),
            )
            .map_err(|e| db_error(&path, e))?;
        journal(
            &tx,
            RecordKind::Lead,
            id,
            ChangeOp::Create,
            &origin,
            &at_text,
        )
        .map_err(|e| db_error(&path, e))?;
        let (event, message) = match duplicate_of {
            Some(earlier) => (
                "duplicate",
                format!(
                    "lead {id} from form {} (response {}) duplicates lead {earlier}",
                    lead.form, lead.linkedin_lead_id
                ),
            ),
            None => (
                "lead-created",
                format!(
                    "lead {id} from form {} (response {})",
                    lead.form, lead.linkedin_lead_id
                ),
            ),
        };
        tx.execute(
            "INSERT INTO lead_log (integration, at, event, message, lead_id)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![lead.integration, at_text, event, message, id],
        )
        .map_err(|e| db_error(&path, e))?;
        tx.commit().map_err(|e| db_error(&path, e))?;
        Ok(LeadOutcome {
            id,
            created: true,
            contact_id,
            duplicate_of,
        })
    }

    /// Adds an entry to `integration`'s log.
    pub fn log_lead_event(
        &mut self,
        integration: &str,
        event: &str,
        message: &str,
        lead_id: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.ensure_writable()?;
        self.conn
            .execute(
                "INSERT INTO lead_log (integration, at, event, message, lead_id)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![integration, format_ts(at), event, message, lead_id],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// `integration`'s log, newest first, at most `limit` entries.
    pub fn lead_log(
        &self,
        integration: &str,
        limit: usize,
    ) -> Result<Vec<LeadLogEntry>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, at, event, message, lead_id FROM lead_log
                 WHERE integration = ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map(
            params![integration, i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| {
                let at: String = r.get(1)?;
                Ok(LeadLogEntry {
                    id: r.get(0)?,
                    at: parse_ts(&at).unwrap_or_default(),
                    event: r.get(2)?,
                    message: r.get(3)?,
                    lead_id: r.get(4)?,
                })
            },
        )
        .and_then(|rows| rows.collect())
        .map_err(|e| self.err(e))
    }
}

/// A backfill of an integration's leads over a period (LI-06), as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadBackfill {
    /// Its id.
    pub id: i64,
    /// The `LeadIntegration`.
    pub integration: String,
    /// Only this form, when set.
    pub form: Option<String>,
    /// The period's start (inclusive).
    pub since: DateTime<Utc>,
    /// The period's end (exclusive).
    pub until: DateTime<Utc>,
    /// The finder's `start` of the next page.
    pub next_start: i64,
    /// Responses read so far.
    pub fetched: i64,
    /// Leads created.
    pub created: i64,
    /// Responses that already were leads.
    pub known: i64,
    /// Responses of other or inactive forms, or that could not be read.
    pub skipped: i64,
    /// When it ended; `None` while it runs.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it ended early, when it did.
    pub error: Option<String>,
}

/// The counts of one page of a backfill.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackfillPage {
    /// Responses read.
    pub fetched: i64,
    /// Leads created.
    pub created: i64,
    /// Already leads.
    pub known: i64,
    /// Skipped.
    pub skipped: i64,
}

const BACKFILL_COLUMNS: &str = "id, integration, form, since, until, next_start, fetched, created, \
     known, skipped, finished_at, error";

fn backfill_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LeadBackfill> {
    let ts = |i: usize| -> rusqlite::Result<DateTime<Utc>> {
        let text: String = r.get(i)?;
        Ok(parse_ts(&text).unwrap_or_default())
    };
    let finished: Option<String> = r.get(10)?;
    Ok(LeadBackfill {
        id: r.get(0)?,
        integration: r.get(1)?,
        form: r.get(2)?,
        since: ts(3)?,
        until: ts(4)?,
        next_start: r.get(5)?,
        fetched: r.get(6)?,
        created: r.get(7)?,
        known: r.get(8)?,
        skipped: r.get(9)?,
        finished_at: finished.as_deref().and_then(parse_ts),
        error: r.get(11)?,
    })
}

impl Store {
    /// Stores a backfill request of `integration` and logs it; answers it as stored.
    pub fn request_lead_backfill(
        &mut self,
        integration: &str,
        form: Option<&str>,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<LeadBackfill, StoreError> {
        self.ensure_writable()?;
        let path = self.path.clone();
        let db_error = |e| db_error(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_error)?;
        tx.execute(
            "INSERT INTO lead_backfills (integration, form, since, until, requested_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                integration,
                form,
                format_ts(since),
                format_ts(until),
                format_ts(at)
            ],
        )
        .map_err(db_error)?;
        let id = tx.last_insert_rowid();
        let message = format!(
            "backfill {id} requested: responses submitted from {} to {}{}",
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            form.map(|f| format!(" on form {f}")).unwrap_or_default()
        );
        tx.execute(
            "INSERT INTO lead_log (integration, at, event, message, lead_id)
             VALUES (?1, ?2, 'backfill-requested', ?3, NULL)",
            params![integration, format_ts(at), message],
        )
        .map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        self.lead_backfill(id)?.ok_or_else(|| self.vanished(id))
    }

    fn vanished(&self, id: i64) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            detail: format!("lead backfill {id} vanished"),
        }
    }

    /// The backfill `id`.
    pub fn lead_backfill(&self, id: i64) -> Result<Option<LeadBackfill>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {BACKFILL_COLUMNS} FROM lead_backfills WHERE id = ?1"),
                params![id],
                backfill_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The backfills of `integration` not finished, oldest first.
    pub fn pending_lead_backfills(
        &self,
        integration: &str,
    ) -> Result<Vec<LeadBackfill>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {BACKFILL_COLUMNS} FROM lead_backfills
                 WHERE integration = ?1 AND finished_at IS NULL ORDER BY id"
            ))
            .map_err(|e| self.err(e))?;
        stmt.query_map(params![integration], backfill_row)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))
    }

    /// Counts a page of backfill `id` and moves its cursor to `next_start`.
    pub fn advance_lead_backfill(
        &mut self,
        id: i64,
        next_start: i64,
        page: BackfillPage,
    ) -> Result<(), StoreError> {
        self.ensure_writable()?;
        self.conn
            .execute(
                "UPDATE lead_backfills SET next_start = ?2, fetched = fetched + ?3,
                     created = created + ?4, known = known + ?5, skipped = skipped + ?6
                 WHERE id = ?1",
                params![
                    id,
                    next_start,
                    page.fetched,
                    page.created,
                    page.known,
                    page.skipped
                ],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Ends backfill `id` (with `error` when it stopped early) and logs its counts.
    pub fn finish_lead_backfill(
        &mut self,
        id: i64,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<LeadBackfill, StoreError> {
        self.ensure_writable()?;
        self.conn
            .execute(
                "UPDATE lead_backfills SET finished_at = ?2, error = ?3 WHERE id = ?1",
                params![id, format_ts(at), error],
            )
            .map_err(|e| self.err(e))?;
        let done = self.lead_backfill(id)?.ok_or_else(|| self.vanished(id))?;
        let counts = format!(
            "{} responses read, {} leads created, {} already leads, {} skipped",
            done.fetched, done.created, done.known, done.skipped
        );
        let (event, message) = match error {
            None => ("backfill-done", format!("backfill {id} done: {counts}")),
            Some(e) => (
                "backfill-failed",
                format!("backfill {id} stopped: {e} ({counts})"),
            ),
        };
        self.log_lead_event(&done.integration, event, &message, None, at)?;
        Ok(done)
    }
}

/// The key a LinkedInAccount's tokens are sealed and stored under in `mail_oauth_tokens`
/// (beside the mailboxes' grants, whose keys are bare names).
pub fn account_grant_key(account: &str) -> String {
    format!("LinkedInAccount/{account}")
}

/// LinkedInAccount `name` left the config: its sealed tokens (a consent's refresh token, the
/// last access token) are deleted in the apply's transaction, so a later account of the same
/// name starts without them.
pub(super) fn forget_account(conn: &rusqlite::Connection, name: &str) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM mail_oauth_tokens WHERE mailbox = ?1",
        params![account_grant_key(name)],
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid timestamp")
    }

    fn lead(id: &str, form: &str, email: &str) -> LinkedInLead {
        LinkedInLead {
            integration: "ads".into(),
            form: form.into(),
            linkedin_lead_id: id.into(),
            submitted_at: t(0),
            columns: Map::from_iter([("Email".to_owned(), Value::from(email))]),
            name: Some("Ada Lovelace".into()),
            emails: vec![email.to_lowercase()],
            phones: vec![],
        }
    }

    // REQ: LI-05
    #[test]
    fn a_notification_is_queued_once_and_a_response_makes_one_lead() {
        let mut store = Store::open_in_memory().expect("store");
        assert!(
            store
                .record_linkedin_notification(
                    "ads",
                    "urn:li:leadGenFormResponse:r1",
                    Some("7"),
                    "{}",
                    t(0)
                )
                .unwrap()
        );
        assert!(
            !store
                .record_linkedin_notification(
                    "ads",
                    "urn:li:leadGenFormResponse:r1",
                    Some("7"),
                    "{}",
                    t(1)
                )
                .unwrap(),
            "the same notification again"
        );
        let pending = store.pending_linkedin_notifications("ads").unwrap();
        assert_eq!(pending.len(), 1);
        store
            .finish_linkedin_notification(pending[0].id, Some("HTTP 500"), t(2))
            .unwrap();
        assert_eq!(
            store.pending_linkedin_notifications("ads").unwrap()[0].attempts,
            1
        );

        let first = store
            .create_linkedin_lead(&lead("r1", "7", "ada@example.com"), t(3))
            .unwrap();
        assert!(first.created && first.contact_id.is_some() && first.duplicate_of.is_none());
        let again = store
            .create_linkedin_lead(&lead("r1", "7", "ada@example.com"), t(4))
            .unwrap();
        assert_eq!((again.id, again.created), (first.id, false));
        let other = store
            .create_linkedin_lead(&lead("r2", "7", "ADA@example.com"), t(5))
            .unwrap();
        assert_eq!(other.contact_id, first.contact_id);
        assert_eq!(other.duplicate_of, Some(first.id));
        let elsewhere = store
            .create_linkedin_lead(&lead("r3", "8", "ada@example.com"), t(6))
            .unwrap();
        assert_eq!(elsewhere.duplicate_of, None, "another form");

        store
            .finish_linkedin_notification(pending[0].id, None, t(7))
            .unwrap();
        assert!(
            store
                .pending_linkedin_notifications("ads")
                .unwrap()
                .is_empty()
        );
        let log = store.lead_log("ads", 10).unwrap();
        let events: Vec<&str> = log.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(events, ["lead-created", "duplicate", "lead-created"]);
    }

    // REQ: LI-06, LI-08
    #[test]
    fn a_backfill_keeps_its_cursor_and_counts_until_it_ends() {
        let mut store = Store::open_in_memory().expect("store");
        let asked = store
            .request_lead_backfill("ads", Some("7"), t(0), t(86_400), t(10))
            .unwrap();
        assert_eq!((asked.next_start, asked.finished_at), (0, None));
        let page = BackfillPage {
            fetched: 100,
            created: 98,
            known: 1,
            skipped: 1,
        };
        store.advance_lead_backfill(asked.id, 100, page).unwrap();
        // A run that stops here (a crash) finds the backfill pending at its next page.
        let pending = store.pending_lead_backfills("ads").unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!((pending[0].next_start, pending[0].created), (100, 98));
        assert!(store.pending_lead_backfills("other").unwrap().is_empty());
        store
            .advance_lead_backfill(
                asked.id,
                130,
                BackfillPage {
                    fetched: 30,
                    created: 30,
                    ..BackfillPage::default()
                },
            )
            .unwrap();
        let done = store.finish_lead_backfill(asked.id, None, t(20)).unwrap();
        assert_eq!(
            (done.fetched, done.created, done.known, done.skipped),
            (130, 128, 1, 1)
        );
        assert!(done.finished_at.is_some() && done.error.is_none());
        assert!(store.pending_lead_backfills("ads").unwrap().is_empty());
        let log = store.lead_log("ads", 10).unwrap();
        assert_eq!(log[0].event, "backfill-done");
        assert!(
            log[0]
                .message
                .contains("130 responses read, 128 leads created"),
            "{}",
            log[0].message
        );
        assert_eq!(log[1].event, "backfill-requested");
    }
}
