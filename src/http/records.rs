//! The records API: contacts, accounts and leads (`/api/v1/contacts`, `/api/v1/accounts`,
//! `/api/v1/leads`), their DTOs with SPEC's shapes, `ETag` / `If-Match` and JSON merge patch.
//!
//! - **ETag**: strong, the SHA-256 (first 128 bits, hex) of the record's JSON as answered, so it
//!   changes exactly when what a client sees changes (an account's rename changes the ETag of
//!   its contacts too). Every answer that carries one record carries its `ETag`.
//! - **PATCH** takes an RFC 7396 merge patch (`application/merge-patch+json`; `application/json`
//!   is accepted too): a member sets a field, `null` clears it, lists are replaced whole.
//!   `account` is a link: `{"id": "…"}` links by id, `{"name": "…"}` links to the one account of
//!   that name (left unlinked when none or several have it, CS-02), `null` unlinks. `If-Match`
//!   with a stale ETag answers 412; the write itself also checks the version it read, so two
//!   racing writers cannot both win. A bad field answers 422 naming it.
//! - **Visibility**: `CanManageAdministration` sees every contact; anyone else the contacts of
//!   the chats and letters they may see (CH-01 — every chat for `CanManageChats` —, MB-04)
//!   and those they created or changed. A
//!   contact one may not see answers 404. Accounts are shared by everyone; deleting one needs
//!   `CanManageAdministration`. Leads: administrators, and the holders of an integration's
//!   `notifyRole` for its leads.
//!
//! Handlers parse, check rights and call the store; the merge policy and the rules (CS-02,
//! MB-01) live in `store::records`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::kinds::{LeadIntegrationSpec, Operation, UserSpec};
use crate::mail::access;
use crate::store::records::{
    Account, AccountChanges, AccountQuery, AccountRef, Contact, ContactChanges, ContactQuery, Lead,
    LeadQuery, RecordError, RecordViewer,
};
use crate::store::records::{Change, ChangeOp, RecordKind};

use super::AppState;
use super::api::{List, Page, page_bounds, ts};
use super::auth::Caller;
use super::error::ApiError;

impl From<RecordError> for ApiError {
    fn from(e: RecordError) -> ApiError {
        match e {
            RecordError::NotFound { .. } => ApiError::not_found(e.to_string()),
            RecordError::Stale { .. } => {
                ApiError::new(StatusCode::PRECONDITION_FAILED, "stale", e.to_string())
            }
            RecordError::Invalid { .. } => ApiError::unprocessable(e.to_string()),
            RecordError::Taken { .. } => ApiError::conflict("taken", e.to_string()),
            RecordError::Store(e) => ApiError::store(e),
        }
    }
}

/// A contact's account link.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AccountLinkDto {
    id: String,
    name: String,
}

/// A chat identity.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityDto {
    channel: String,
    external_id: String,
}

/// A contact, as SPEC shapes it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactDto {
    id: String,
    name: Option<String>,
    emails: Vec<String>,
    phones: Vec<String>,
    job_title: Option<String>,
    account: Option<AccountLinkDto>,
    tags: Vec<String>,
    identities: Vec<IdentityDto>,
    created_at: String,
    updated_at: String,
}

impl From<Contact> for ContactDto {
    fn from(c: Contact) -> ContactDto {
        ContactDto {
            id: c.id.to_string(),
            name: c.name,
            emails: c.emails,
            phones: c.phones,
            job_title: c.job_title,
            account: c.account.map(|a| AccountLinkDto {
                id: a.id.to_string(),
                name: a.name,
            }),
            tags: c.tags,
            identities: c
                .identities
                .into_iter()
                .map(|i| IdentityDto {
                    channel: i.channel,
                    external_id: i.external_id,
                })
                .collect(),
            created_at: ts(c.created_at),
            updated_at: ts(c.updated_at),
        }
    }
}

/// An account, as SPEC shapes it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountDto {
    id: String,
    name: String,
    domains: Vec<String>,
    created_at: String,
    updated_at: String,
}

impl From<Account> for AccountDto {
    fn from(a: Account) -> AccountDto {
        AccountDto {
            id: a.id.to_string(),
            name: a.name,
            domains: a.domains,
            created_at: ts(a.created_at),
            updated_at: ts(a.updated_at),
        }
    }
}

/// A lead, as SPEC shapes it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeadDto {
    id: String,
    integration: String,
    form: String,
    linkedin_lead_id: String,
    submitted_at: String,
    columns: Map<String, Value>,
    contact_id: Option<String>,
    duplicate_of: Option<String>,
    created_at: String,
}

impl From<Lead> for LeadDto {
    fn from(l: Lead) -> LeadDto {
        LeadDto {
            id: l.id.to_string(),
            integration: l.integration,
            form: l.form,
            linkedin_lead_id: l.linkedin_lead_id,
            submitted_at: ts(l.submitted_at),
            columns: l.columns,
            contact_id: l.contact_id.map(|id| id.to_string()),
            duplicate_of: l.duplicate_of.map(|id| id.to_string()),
            created_at: ts(l.created_at),
        }
    }
}

/// The strong ETag of a record's JSON.
pub(super) fn etag_of<T: Serialize>(dto: &T) -> String {
    let json = serde_json::to_vec(dto).expect("a DTO serializes");
    format!("\"{}\"", &hex::encode(Sha256::digest(&json))[..32])
}

/// One record with its `ETag`.
pub(super) fn with_etag<T: Serialize>(status: StatusCode, dto: T) -> Response {
    let etag = etag_of(&dto);
    let mut response = (status, Json(dto)).into_response();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// 201 with the new record, its `ETag` and its `Location` (`{collection}/{id}`).
pub(super) fn created<T: Serialize>(collection: &str, id: i64, dto: T) -> Response {
    let mut response = with_etag(StatusCode::CREATED, dto);
    if let Ok(value) = HeaderValue::from_str(&format!("{collection}/{id}")) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// 412 unless `If-Match` (when given) names `current` or is `*`.
pub(super) fn check_if_match(headers: &HeaderMap, current: &str) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::bad_request("If-Match is not ASCII"))?;
    let matches = value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag == current);
    if matches {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "stale",
            "the record changed since that ETag was read (If-Match); read it again",
        ))
    }
}

pub(super) fn record_id(kind: &str, id: &str) -> Result<i64, ApiError> {
    id.parse()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::not_found(format!("no {kind} {id}")))
}

pub(super) fn origin(caller: &Caller) -> String {
    format!("User/{}", caller.user)
}

pub(super) fn admin(caller: &Caller) -> bool {
    caller
        .operations
        .contains(&Operation::CanManageAdministration)
}

/// What the caller may see of the contacts (`None`: everything).
async fn viewer(state: &AppState, caller: &Caller) -> Option<RecordViewer> {
    if admin(caller) {
        return None;
    }
    let snapshot = state.chat.snapshot().await;
    Some(RecordViewer {
        user: caller.user.clone(),
        queues: snapshot.queues_of(&caller.user),
        all_chats: caller.operations.contains(&Operation::CanManageChats),
        mailboxes: access::readable(&state.engine.config(), &caller.user),
    })
}

pub(super) fn parse_time(field: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::bad_request(format!(
                "{field} must be an RFC 3339 time, like 2025-01-31T12:00:00Z"
            ))
        })
}

/// The JSON object of a POST or PATCH body; 415 for another content type.
pub(super) fn body_object(
    headers: &HeaderMap,
    body: &Bytes,
    patch: bool,
) -> Result<Map<String, Value>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let accepted = essence.eq_ignore_ascii_case("application/json")
        || (patch && essence.eq_ignore_ascii_case("application/merge-patch+json"));
    if !accepted {
        let wanted = if patch {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!("send the body as {wanted}"),
        ));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request("the body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!("invalid JSON: {e}"))),
    }
}

pub(super) fn unprocessable(field: &str, message: &str) -> ApiError {
    ApiError::unprocessable(format!("{field}: {message}"))
}

/// A string field: `Some(None)` for null.
pub(super) fn string_field(field: &str, value: &Value) -> Result<Option<String>, ApiError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(unprocessable(field, "must be a string or null")),
    }
}

/// A list of strings; null is the empty list.
fn list_field(field: &str, value: &Value) -> Result<Vec<String>, ApiError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| unprocessable(&format!("{field}[{i}]"), "must be a string"))
            })
            .collect(),
        _ => Err(unprocessable(field, "must be a list of strings")),
    }
}

// Only its schema is used (the OpenAPI document): `contact_changes` reads the body, and a unit
// test checks that it takes every field named here.
/// The body of `POST /api/v1/contacts` and the merge patch of `PATCH /api/v1/contacts/{id}`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
pub struct ContactWrite {
    name: Option<String>,
    job_title: Option<String>,
    /// Replaced whole; null is the empty list.
    emails: Option<Vec<String>>,
    phones: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    /// Links by `id`, or to the one account of that `name`; null unlinks.
    account: Option<AccountLinkWrite>,
}

/// A contact's account link in a write: `{"id"}` or `{"name"}`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[allow(dead_code)]
pub struct AccountLinkWrite {
    #[schemars(regex(pattern = r"^[0-9]+$"))]
    id: Option<String>,
    name: Option<String>,
}

// Only its schema is used: `account_changes` reads the body.
/// The body of `POST /api/v1/accounts` and the merge patch of `PATCH /api/v1/accounts/{id}`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct AccountWrite {
    /// Required when creating; never null.
    #[serde(default)]
    #[schemars(with = "String", length(min = 1, max = 500))]
    name: Option<String>,
    domains: Option<Vec<String>>,
}

/// The contact fields of a POST body or merge patch.
fn contact_changes(body: &Map<String, Value>) -> Result<ContactChanges, ApiError> {
    let mut changes = ContactChanges::default();
    for (key, value) in body {
        match key.as_str() {
            "name" => changes.name = Some(string_field(key, value)?),
            "jobTitle" => changes.job_title = Some(string_field(key, value)?),
            "emails" => changes.emails = Some(list_field(key, value)?),
            "phones" => changes.phones = Some(list_field(key, value)?),
            "tags" => changes.tags = Some(list_field(key, value)?),
            "account" => {
                changes.account = Some(match value {
                    Value::Null => None,
                    Value::Object(link) => Some(account_ref(link)?),
                    _ => return Err(unprocessable(key, "must be {\"id\"}, {\"name\"} or null")),
                });
            }
            "id" | "identities" | "createdAt" | "updatedAt" => {
                return Err(unprocessable(key, "is read-only"));
            }
            _ => return Err(unprocessable(key, "is not a contact field")),
        }
    }
    Ok(changes)
}

fn account_ref(link: &Map<String, Value>) -> Result<AccountRef, ApiError> {
    if let Some(id) = link.get("id").filter(|v| !v.is_null()) {
        let id = match id {
            Value::String(s) => s.parse().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        };
        return id
            .map(AccountRef::Id)
            .ok_or_else(|| unprocessable("account.id", "must be an account id"));
    }
    match link.get("name") {
        Some(Value::String(name)) if !name.trim().is_empty() => Ok(AccountRef::Name(name.clone())),
        _ => Err(unprocessable("account", "give an id or a name")),
    }
}

/// The account fields of a POST body or merge patch.
fn account_changes(body: &Map<String, Value>) -> Result<AccountChanges, ApiError> {
    let mut changes = AccountChanges::default();
    for (key, value) in body {
        match key.as_str() {
            "name" => {
                changes.name = Some(
                    string_field(key, value)?
                        .ok_or_else(|| unprocessable(key, "an account needs a name"))?,
                );
            }
            "domains" => changes.domains = Some(list_field(key, value)?),
            "id" | "createdAt" | "updatedAt" => return Err(unprocessable(key, "is read-only")),
            _ => return Err(unprocessable(key, "is not an account field")),
        }
    }
    Ok(changes)
}

// ---- contacts -----------------------------------------------------------------------------

/// The filters of `GET /api/v1/contacts`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactFilter {
    q: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    tag: Option<String>,
    /// An account's id.
    #[schemars(regex(pattern = r"^[0-9]+$"))]
    account: Option<String>,
    #[schemars(extend("format" = "date-time"))]
    updated_since: Option<String>,
}

/// `GET /api/v1/contacts`.
pub async fn list_contacts(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<Page>,
    Query(filter): Query<ContactFilter>,
) -> Result<Json<List<ContactDto>>, ApiError> {
    let (offset, limit) = page_bounds(&page)?;
    let account = filter
        .account
        .as_deref()
        .map(|a| {
            a.parse::<i64>()
                .map_err(|_| ApiError::bad_request("account must be an account id"))
        })
        .transpose()?;
    let query = ContactQuery {
        viewer: viewer(&state, &caller).await,
        q: filter.q.filter(|q| !q.is_empty()),
        email: filter.email,
        phone: filter.phone,
        tag: filter.tag,
        account,
        updated_since: filter
            .updated_since
            .as_deref()
            .map(|t| parse_time("updatedSince", t))
            .transpose()?,
        offset,
        limit,
    };
    let (items, total) = state
        .engine
        .store()
        .call(move |s| s.contacts(&query))
        .await
        .map_err(ApiError::store)?;
    let items = items.into_iter().map(ContactDto::from).collect();
    Ok(Json(List::page(items, total, offset)))
}

/// The contact `id` as the caller may see it, or 404.
async fn visible_contact(state: &AppState, caller: &Caller, id: i64) -> Result<Contact, ApiError> {
    let viewer = viewer(state, caller).await;
    let found = state
        .engine
        .store()
        .call(move |s| {
            let contact = s.contact(id)?;
            match (&contact, &viewer) {
                (Some(_), Some(v)) if !s.contact_visible(id, v)? => Ok(None),
                _ => Ok(contact),
            }
        })
        .await
        .map_err(ApiError::store)?;
    found.ok_or_else(|| ApiError::not_found(format!("no contact {id}")))
}

/// `GET /api/v1/contacts/{id}`.
pub async fn get_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = record_id("contact", &id)?;
    let contact = visible_contact(&state, &caller, id).await?;
    Ok(with_etag(StatusCode::OK, ContactDto::from(contact)))
}

/// `POST /api/v1/contacts`: 201 with the contact and its `Location`.
pub async fn create_contact(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let changes = contact_changes(&body_object(&headers, &body, false)?)?;
    let origin = origin(&caller);
    let contact = state
        .engine
        .store()
        .call(move |s| Ok(s.create_contact(&changes, &origin, Utc::now())))
        .await
        .map_err(ApiError::store)??;
    let id = contact.id;
    Ok(created("/api/v1/contacts", id, ContactDto::from(contact)))
}

/// `PATCH /api/v1/contacts/{id}`: a JSON merge patch, honouring `If-Match`.
pub async fn patch_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = record_id("contact", &id)?;
    let current = visible_contact(&state, &caller, id).await?;
    let version = current.version;
    check_if_match(&headers, &etag_of(&ContactDto::from(current)))?;
    let changes = contact_changes(&body_object(&headers, &body, true)?)?;
    let origin = origin(&caller);
    let contact = state
        .engine
        .store()
        .call(move |s| Ok(s.update_contact(id, Some(version), &changes, &origin, Utc::now())))
        .await
        .map_err(ApiError::store)??;
    Ok(with_etag(StatusCode::OK, ContactDto::from(contact)))
}

/// `DELETE /api/v1/contacts/{id}`: 204; letters and chats keep their link (see `store::records`).
pub async fn delete_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let id = record_id("contact", &id)?;
    let current = visible_contact(&state, &caller, id).await?;
    let version = current.version;
    check_if_match(&headers, &etag_of(&ContactDto::from(current)))?;
    let origin = origin(&caller);
    state
        .engine
        .store()
        .call(move |s| Ok(s.delete_contact(id, Some(version), &origin, Utc::now())))
        .await
        .map_err(ApiError::store)??;
    Ok(StatusCode::NO_CONTENT)
}

// ---- accounts -----------------------------------------------------------------------------

/// The filters of `GET /api/v1/accounts`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountFilter {
    q: Option<String>,
    domain: Option<String>,
    #[schemars(extend("format" = "date-time"))]
    updated_since: Option<String>,
}

/// `GET /api/v1/accounts`.
pub async fn list_accounts(
    State(state): State<AppState>,
    _caller: Caller,
    Query(page): Query<Page>,
    Query(filter): Query<AccountFilter>,
) -> Result<Json<List<AccountDto>>, ApiError> {
    let (offset, limit) = page_bounds(&page)?;
    let query = AccountQuery {
        q: filter.q.filter(|q| !q.is_empty()),
        domain: filter.domain,
        updated_since: filter
            .updated_since
            .as_deref()
            .map(|t| parse_time("updatedSince", t))
            .transpose()?,
        offset,
        limit,
    };
    let (items, total) = state
        .engine
        .store()
        .call(move |s| s.accounts(&query))
        .await
        .map_err(ApiError::store)?;
    let items = items.into_iter().map(AccountDto::from).collect();
    Ok(Json(List::page(items, total, offset)))
}

async fn find_account(state: &AppState, id: i64) -> Result<Account, ApiError> {
    state
        .engine
        .store()
        .call(move |s| s.account(id))
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| ApiError::not_found(format!("no account {id}")))
}

/// `GET /api/v1/accounts/{id}`.
pub async fn get_account(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = record_id("account", &id)?;
    let account = find_account(&state, id).await?;
    Ok(with_etag(StatusCode::OK, AccountDto::from(account)))
}

/// `POST /api/v1/accounts`: 201; contacts of its domains without an account are linked to it
/// when it is the only account of the domain (MB-01).
pub async fn create_account(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let changes = account_changes(&body_object(&headers, &body, false)?)?;
    if changes.name.is_none() {
        return Err(unprocessable("name", "an account needs a name"));
    }
    let origin = origin(&caller);
    let account = state
        .engine
        .store()
        .call(move |s| Ok(s.create_account(&changes, &origin, Utc::now())))
        .await
        .map_err(ApiError::store)??;
    let id = account.id;
    Ok(created("/api/v1/accounts", id, AccountDto::from(account)))
}

/// `PATCH /api/v1/accounts/{id}`.
pub async fn patch_account(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = record_id("account", &id)?;
    let current = find_account(&state, id).await?;
    let version = current.version;
    check_if_match(&headers, &etag_of(&AccountDto::from(current)))?;
    let changes = account_changes(&body_object(&headers, &body, true)?)?;
    let origin = origin(&caller);
    let account = state
        .engine
        .store()
        .call(move |s| Ok(s.update_account(id, Some(version), &changes, &origin, Utc::now())))
        .await
        .map_err(ApiError::store)??;
    Ok(with_etag(StatusCode::OK, AccountDto::from(account)))
}

/// `DELETE /api/v1/accounts/{id}` (`CanManageAdministration`): its contacts are unlinked.
pub async fn delete_account(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    caller.require(Operation::CanManageAdministration)?;
    let id = record_id("account", &id)?;
    let current = find_account(&state, id).await?;
    let version = current.version;
    check_if_match(&headers, &etag_of(&AccountDto::from(current)))?;
    let origin = origin(&caller);
    state
        .engine
        .store()
        .call(move |s| Ok(s.delete_account(id, Some(version), &origin, Utc::now())))
        .await
        .map_err(ApiError::store)??;
    Ok(StatusCode::NO_CONTENT)
}

// ---- leads --------------------------------------------------------------------------------

/// The filters of `GET /api/v1/leads`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct LeadFilter {
    integration: Option<String>,
    form: Option<String>,
    #[schemars(extend("format" = "date-time"))]
    since: Option<String>,
}

/// The integrations whose leads the caller may read (`None`: all).
pub(super) fn lead_integrations(state: &AppState, caller: &Caller) -> Option<Vec<String>> {
    if admin(caller) {
        return None;
    }
    let config = state.engine.config();
    let roles: Vec<String> = config
        .specs::<UserSpec>()
        .find(|(o, _)| o.name == caller.user)
        .map(|(_, u)| u.roles.clone())
        .unwrap_or_default();
    Some(
        config
            .specs::<LeadIntegrationSpec>()
            .filter(|(_, l)| l.notify_role.as_ref().is_some_and(|r| roles.contains(r)))
            .map(|(o, _)| o.name.clone())
            .collect(),
    )
}

/// `GET /api/v1/leads`: newest submitted first.
pub async fn list_leads(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<Page>,
    Query(filter): Query<LeadFilter>,
) -> Result<Json<List<LeadDto>>, ApiError> {
    let (offset, limit) = page_bounds(&page)?;
    let allowed = lead_integrations(&state, &caller);
    if let (Some(allowed), Some(wanted)) = (&allowed, &filter.integration)
        && !allowed.contains(wanted)
    {
        return Err(ApiError::forbidden(format!(
            "user {} may not read the leads of {wanted}",
            caller.user
        )));
    }
    let since = filter
        .since
        .as_deref()
        .map(|t| parse_time("since", t))
        .transpose()?;
    let query = LeadQuery {
        integrations: match filter.integration {
            Some(one) => Some(vec![one]),
            None => allowed,
        },
        form: filter.form,
        since,
        offset,
        limit,
    };
    let (items, total) = state
        .engine
        .store()
        .call(move |s| s.leads(&query))
        .await
        .map_err(ApiError::store)?;
    let items = items.into_iter().map(LeadDto::from).collect();
    Ok(Json(List::page(items, total, offset)))
}

/// `GET /api/v1/leads/{id}`.
pub async fn get_lead(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = record_id("lead", &id)?;
    let allowed = lead_integrations(&state, &caller);
    let lead = state
        .engine
        .store()
        .call(move |s| s.lead(id))
        .await
        .map_err(ApiError::store)?
        .filter(|l| allowed.as_ref().is_none_or(|a| a.contains(&l.integration)))
        .ok_or_else(|| ApiError::not_found(format!("no lead {id}")))?;
    Ok(with_etag(StatusCode::OK, LeadDto::from(lead)))
}

// ---- record.changed ---------------------------------------------------------------------

/// How often an open event stream reads the change journal for `record.changed`. The journal
/// is the one place every writer (API, chat writer, mail sync, later the syncs) records a
/// change, each on its own connection or process, so the stream follows it rather than an
/// in-memory bus that would miss the writers outside this process.
const JOURNAL_POLL: Duration = Duration::from_millis(500);

/// The most journal entries one poll reads.
const JOURNAL_BATCH: usize = 500;

/// `record.changed` events for `GET /api/v1/events`: every contact, account and (for
/// administrators) activity change from
/// the moment the stream opens, `{"kind", "id", "op", "origin", "seq"}`, for the records the
/// caller may see (a deleted contact is announced to administrators only; it can no longer
/// be checked against anyone's chats). Ends when the daemon stops.
pub async fn record_events(
    state: AppState,
    caller: &Caller,
) -> impl Stream<Item = Result<Event, Infallible>> + use<> {
    let viewer = viewer(&state, caller).await;
    let notified = super::leads::notified_integrations(&state, caller);
    let store = state.engine.store().clone();
    let start = store
        .call(|s| s.last_change_seq())
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the change journal; record events start at 0");
            0
        });
    let mut ticks = tokio::time::interval(JOURNAL_POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stopping = state.chat.stopping();
    let pending: VecDeque<Event> = VecDeque::new();
    futures_util::stream::unfold(
        (store, (viewer, notified), start, ticks, stopping, pending),
        |(store, viewer, mut last, mut ticks, stopping, mut pending)| async move {
            loop {
                if let Some(event) = pending.pop_front() {
                    return Some((Ok(event), (store, viewer, last, ticks, stopping, pending)));
                }
                tokio::select! {
                    () = stopping.cancelled() => return None,
                    _ = ticks.tick() => {}
                }
                let (who, notified) = viewer.clone();
                let read = store
                    .call(move |s| {
                        let changes = s.changes_since(last, None, JOURNAL_BATCH)?;
                        let mut visible = Vec::with_capacity(changes.len());
                        for change in changes {
                            let shown = match (change.kind, &who) {
                                (RecordKind::Contact, Some(v)) => {
                                    s.contact_visible(change.id, v)?
                                }
                                (RecordKind::Contact | RecordKind::Account, _) => true,
                                // Who takes part in an activity is not checked per event:
                                // administrators only.
                                (RecordKind::Activity, None) => true,
                                // `lead.created`, to the members of the integration's
                                // notifyRole only.
                                (RecordKind::Lead, _) => {
                                    change.op == ChangeOp::Create
                                        && change
                                            .origin
                                            .strip_prefix("LeadIntegration/")
                                            .is_some_and(|n| notified.iter().any(|i| i == n))
                                }
                                _ => false,
                            };
                            visible.push((change, shown));
                        }
                        Ok(visible)
                    })
                    .await;
                match read {
                    Ok(changes) => {
                        for (change, shown) in changes {
                            last = last.max(change.seq);
                            if shown {
                                pending.push_back(change_event(&change));
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read the change journal"),
                }
            }
        },
    )
}

fn change_event(change: &Change) -> Event {
    if change.kind == RecordKind::Lead {
        let integration = change
            .origin
            .strip_prefix("LeadIntegration/")
            .unwrap_or(&change.origin);
        let data = serde_json::json!({
            "id": change.id.to_string(),
            "integration": integration,
            "seq": change.seq,
        });
        return Event::default()
            .event("lead.created")
            .data(data.to_string());
    }
    let data = serde_json::json!({
        "kind": change.kind.as_str(),
        "id": change.id.to_string(),
        "op": change.op.as_str(),
        "origin": change.origin,
        "seq": change.seq,
    });
    Event::default()
        .event("record.changed")
        .data(data.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Issue: console / OpenAPI (the documented write bodies are what the parser takes)
    #[test]
    fn the_documented_write_fields_are_the_parsed_ones() {
        let fields = |schema: schemars::Schema| -> Vec<String> {
            schema
                .get("properties")
                .and_then(Value::as_object)
                .expect("properties")
                .keys()
                .cloned()
                .collect()
        };
        for field in fields(schemars::schema_for!(ContactWrite)) {
            let body: Map<String, Value> = [(field.clone(), Value::Null)].into_iter().collect();
            assert!(
                contact_changes(&body).is_ok(),
                "contact field {field} is documented but refused"
            );
        }
        for field in fields(schemars::schema_for!(AccountWrite)) {
            let body: Map<String, Value> =
                [(field.clone(), json_value(&field))].into_iter().collect();
            assert!(
                account_changes(&body).is_ok(),
                "account field {field} is documented but refused"
            );
        }
        let unknown: Map<String, Value> =
            [("nickname".to_owned(), Value::Null)].into_iter().collect();
        assert!(contact_changes(&unknown).is_err());
    }

    fn json_value(field: &str) -> Value {
        if field == "name" {
            Value::String("Acme".into())
        } else {
            Value::Null
        }
    }
}
