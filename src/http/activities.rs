//! `/api/v1/activities`: meetings and tasks with SPEC's shape, filters (`owner`, `from`, `to`,
//! `kind`), paging, ETag / `If-Match` / JSON merge patch as the other records
//! ([`super::records`]).
//!
//! `meeting` is found when the activity is read, by the `MeetingService` masks of the running
//! config in the provider's online-meeting field (`onlineMeetingUrl`), then the location, then
//! the description (OM-01, [`crate::config::kinds::find_meeting`]): a mask added or changed by
//! a reload applies to every activity at once. Organizer and participants are linked to the
//! contact with their address and to the `User` with that `email`.
//!
//! Rights: `CanManageAdministration` sees and changes every activity; anyone else the ones
//! they own, organize or take part in (by their `User.email`), and only they may be the owner
//! of what they create.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::ConfigSet;
use crate::config::kinds::{MeetingServiceSpec, UserSpec, find_meeting};
use crate::store::activities::{
    Activity, ActivityChanges, ActivityKind, ActivityQuery, ActivityViewer, Participant,
};

use super::AppState;
use super::api::{List, Page, page_bounds, ts};
use super::auth::Caller;
use super::error::ApiError;
use super::records::{
    admin, body_object, check_if_match, created, etag_of, origin, parse_time, record_id,
    string_field, unprocessable, with_etag,
};

/// A person of an activity.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonDto {
    email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contact_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<String>,
}

/// The meeting an activity links to.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct MeetingDto {
    service: String,
    url: String,
}

/// An activity, as SPEC shapes it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivityDto {
    id: String,
    kind: &'static str,
    title: String,
    description: Option<String>,
    location: Option<String>,
    start: Option<String>,
    end: Option<String>,
    all_day: bool,
    due: Option<String>,
    status: Option<String>,
    show_in_schedule: bool,
    owner: Option<String>,
    organizer: Option<PersonDto>,
    participants: Vec<PersonDto>,
    meeting: Option<MeetingDto>,
    /// The provider's online-meeting field, when the activity has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    online_meeting_url: Option<String>,
    created_at: String,
    updated_at: String,
}

/// What a read needs from the running config: users by address and the meeting services.
struct Directory {
    users: BTreeMap<String, String>,
    services: Vec<(String, MeetingServiceSpec)>,
}

impl Directory {
    fn of(set: &ConfigSet) -> Directory {
        Directory {
            users: set
                .specs::<UserSpec>()
                .map(|(o, u)| (u.email.to_string().to_lowercase(), o.name.clone()))
                .collect(),
            services: set
                .specs::<MeetingServiceSpec>()
                .map(|(o, m)| (o.name.clone(), m.clone()))
                .collect(),
        }
    }

    fn person(&self, p: Participant, response: bool) -> PersonDto {
        PersonDto {
            user: self.users.get(&p.email).cloned(),
            contact_id: p.contact_id.map(|id| id.to_string()),
            response: response.then_some(p.response),
            email: p.email,
        }
    }

    fn dto(&self, a: Activity) -> ActivityDto {
        let meeting = find_meeting(
            self.services.iter().map(|(n, s)| (n.as_str(), s)),
            &[
                a.online_meeting_url.as_deref(),
                a.location.as_deref(),
                a.description.as_deref(),
            ],
        )
        .map(|(service, url)| MeetingDto { service, url });
        ActivityDto {
            id: a.id.to_string(),
            kind: a.kind.as_str(),
            title: a.title,
            description: a.description,
            location: a.location,
            start: a.start.map(ts),
            end: a.end.map(ts),
            all_day: a.all_day,
            due: a.due.map(ts),
            status: a.status,
            show_in_schedule: a.show_in_schedule,
            owner: a.owner,
            organizer: a.organizer.map(|p| self.person(p, false)),
            participants: a
                .participants
                .into_iter()
                .map(|p| self.person(p, true))
                .collect(),
            meeting,
            online_meeting_url: a.online_meeting_url,
            created_at: ts(a.created_at),
            updated_at: ts(a.updated_at),
        }
    }
}

fn viewer(state: &AppState, caller: &Caller) -> Option<ActivityViewer> {
    if admin(caller) {
        return None;
    }
    let config = state.engine.config();
    let email = config
        .specs::<UserSpec>()
        .find(|(o, _)| o.name == caller.user)
        .map(|(_, u)| u.email.to_string().to_lowercase())
        .unwrap_or_default();
    Some(ActivityViewer {
        user: caller.user.clone(),
        email,
    })
}

fn visible(viewer: Option<&ActivityViewer>, a: &Activity) -> bool {
    let Some(v) = viewer else { return true };
    a.owner.as_deref() == Some(v.user.as_str())
        || a.organizer.as_ref().is_some_and(|o| o.email == v.email)
        || a.participants.iter().any(|p| p.email == v.email)
}

fn time_field(field: &str, value: &Value) -> Result<Option<chrono::DateTime<Utc>>, ApiError> {
    match string_field(field, value)? {
        None => Ok(None),
        Some(text) => parse_time(field, &text)
            .map(Some)
            .map_err(|_| unprocessable(field, "must be an RFC 3339 time")),
    }
}

fn bool_field(field: &str, value: &Value) -> Result<bool, ApiError> {
    value
        .as_bool()
        .ok_or_else(|| unprocessable(field, "must be true or false"))
}

// Only its schema is used (the OpenAPI document): `changes` reads the body.
/// The body of `POST /api/v1/activities` and the merge patch of `PATCH /api/v1/activities/{id}`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
pub struct ActivityWrite {
    /// `meeting` or `task`; required when creating.
    #[serde(default)]
    #[schemars(with = "String", extend("enum" = ["meeting", "task"]))]
    kind: Option<String>,
    /// Required when creating; never null.
    #[serde(default)]
    #[schemars(with = "String")]
    title: Option<String>,
    description: Option<String>,
    location: Option<String>,
    status: Option<String>,
    online_meeting_url: Option<String>,
    /// RFC 3339.
    start: Option<String>,
    end: Option<String>,
    due: Option<String>,
    #[serde(default)]
    #[schemars(with = "bool")]
    all_day: Option<bool>,
    #[serde(default)]
    #[schemars(with = "bool")]
    show_in_schedule: Option<bool>,
    /// A User's name: only administrators give activities to others.
    owner: Option<String>,
    organizer: Option<PersonWrite>,
    participants: Option<Vec<PersonWrite>>,
}

/// A person in an activity write.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[allow(dead_code)]
pub struct PersonWrite {
    email: String,
    /// Participants only: `none`, `accepted`, `declined` or `tentative`.
    response: Option<String>,
}

/// The fields of a POST body or merge patch; checks an owner against the config.
fn changes(
    body: &Map<String, Value>,
    set: &ConfigSet,
    caller: &Caller,
) -> Result<ActivityChanges, ApiError> {
    let mut c = ActivityChanges::default();
    for (key, value) in body {
        let k = key.as_str();
        match k {
            "kind" => {
                c.kind = Some(
                    value
                        .as_str()
                        .and_then(ActivityKind::parse)
                        .ok_or_else(|| unprocessable(k, "must be meeting or task"))?,
                );
            }
            "title" => {
                c.title =
                    Some(string_field(k, value)?.ok_or_else(|| unprocessable(k, "is required"))?);
            }
            "description" => c.description = Some(string_field(k, value)?),
            "location" => c.location = Some(string_field(k, value)?),
            "status" => c.status = Some(string_field(k, value)?),
            "onlineMeetingUrl" => c.online_meeting_url = Some(string_field(k, value)?),
            "start" => c.start = Some(time_field(k, value)?),
            "end" => c.end = Some(time_field(k, value)?),
            "due" => c.due = Some(time_field(k, value)?),
            "allDay" => c.all_day = Some(bool_field(k, value)?),
            "showInSchedule" => c.show_in_schedule = Some(bool_field(k, value)?),
            "owner" => {
                let owner = string_field(k, value)?;
                if let Some(owner) = &owner {
                    if set.specs::<UserSpec>().all(|(o, _)| &o.name != owner) {
                        return Err(unprocessable(k, &format!("no user {owner}")));
                    }
                    if !admin(caller) && owner != &caller.user {
                        return Err(ApiError::forbidden(format!(
                            "user {} may only own their own activities",
                            caller.user
                        )));
                    }
                }
                c.owner = Some(owner);
            }
            "organizer" => {
                c.organizer = Some(match value {
                    Value::Null => None,
                    Value::Object(o) => Some(
                        o.get("email")
                            .and_then(Value::as_str)
                            .ok_or_else(|| unprocessable("organizer.email", "is required"))?
                            .to_owned(),
                    ),
                    _ => return Err(unprocessable(k, "must be {\"email\"} or null")),
                });
            }
            "participants" => {
                let list = match value {
                    Value::Null => Vec::new(),
                    Value::Array(items) => items.clone(),
                    _ => return Err(unprocessable(k, "must be a list")),
                };
                let mut people = Vec::with_capacity(list.len());
                for (i, item) in list.iter().enumerate() {
                    let email = item.get("email").and_then(Value::as_str).ok_or_else(|| {
                        unprocessable(&format!("participants[{i}].email"), "is required")
                    })?;
                    let response = item
                        .get("response")
                        .and_then(Value::as_str)
                        .unwrap_or("none");
                    people.push((email.to_owned(), response.to_owned()));
                }
                c.participants = Some(people);
            }
            "id" | "meeting" | "createdAt" | "updatedAt" => {
                return Err(unprocessable(k, "is read-only"));
            }
            _ => return Err(unprocessable(k, "is not an activity field")),
        }
    }
    Ok(c)
}

/// The filters of `GET /api/v1/activities`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ActivityFilter {
    owner: Option<String>,
    #[schemars(extend("format" = "date-time"))]
    from: Option<String>,
    #[schemars(extend("format" = "date-time"))]
    to: Option<String>,
    #[schemars(extend("enum" = ["meeting", "task"]))]
    kind: Option<String>,
}

/// `GET /api/v1/activities`: by start (or due) time.
pub async fn list_activities(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<Page>,
    Query(filter): Query<ActivityFilter>,
) -> Result<Json<List<ActivityDto>>, ApiError> {
    let (offset, limit) = page_bounds(&page)?;
    let kind = filter
        .kind
        .as_deref()
        .map(|k| {
            ActivityKind::parse(k)
                .ok_or_else(|| ApiError::bad_request("kind must be meeting or task"))
        })
        .transpose()?;
    let query = ActivityQuery {
        viewer: viewer(&state, &caller),
        owner: filter.owner,
        kind,
        from: filter
            .from
            .as_deref()
            .map(|t| parse_time("from", t))
            .transpose()?,
        to: filter
            .to
            .as_deref()
            .map(|t| parse_time("to", t))
            .transpose()?,
        offset,
        limit,
    };
    let (items, total) = state
        .engine
        .store()
        .call(move |s| s.activities(&query))
        .await
        .map_err(ApiError::store)?;
    let directory = Directory::of(&state.engine.config());
    let items = items.into_iter().map(|a| directory.dto(a)).collect();
    Ok(Json(List::page(items, total, offset)))
}

async fn visible_activity(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<Activity, ApiError> {
    let viewer = viewer(state, caller);
    state
        .engine
        .store()
        .call(move |s| s.activity(id))
        .await
        .map_err(ApiError::store)?
        .filter(|a| visible(viewer.as_ref(), a))
        .ok_or_else(|| ApiError::not_found(format!("no activity {id}")))
}

/// `GET /api/v1/activities/{id}`.
pub async fn get_activity(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = record_id("activity", &id)?;
    let activity = visible_activity(&state, &caller, id).await?;
    let directory = Directory::of(&state.engine.config());
    Ok(with_etag(StatusCode::OK, directory.dto(activity)))
}

/// `POST /api/v1/activities`: 201; the owner defaults to the caller.
pub async fn create_activity(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let config = state.engine.config();
    let mut c = changes(&body_object(&headers, &body, false)?, &config, &caller)?;
    if c.owner.is_none() {
        c.owner = Some(Some(caller.user.clone()));
    }
    let origin = origin(&caller);
    let activity = state
        .engine
        .store()
        .call(move |s| Ok(s.create_activity(&c, &origin, Utc::now())))
        .await
        .map_err(ApiError::store)??;
    let id = activity.id;
    Ok(created(
        "/api/v1/activities",
        id,
        Directory::of(&config).dto(activity),
    ))
}

/// `PATCH /api/v1/activities/{id}`: a JSON merge patch, honouring `If-Match`.
pub async fn patch_activity(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = record_id("activity", &id)?;
    let config = state.engine.config();
    let directory = Directory::of(&config);
    let current = visible_activity(&state, &caller, id).await?;
    let version = current.version;
    check_if_match(&headers, &etag_of(&directory.dto(current)))?;
    let c = changes(&body_object(&headers, &body, true)?, &config, &caller)?;
    let origin = origin(&caller);
    let activity = state
        .engine
        .store()
        .call(move |s| Ok(s.update_activity(id, Some(version), &c, &origin, Utc::now())))
        .await
        .map_err(ApiError::store)??;
    Ok(with_etag(StatusCode::OK, directory.dto(activity)))
}

/// `DELETE /api/v1/activities/{id}`: 204.
pub async fn delete_activity(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let id = record_id("activity", &id)?;
    let directory = Directory::of(&state.engine.config());
    let current = visible_activity(&state, &caller, id).await?;
    let version = current.version;
    check_if_match(&headers, &etag_of(&directory.dto(current)))?;
    let origin = origin(&caller);
    state
        .engine
        .store()
        .call(move |s| Ok(s.delete_activity(id, Some(version), &origin, Utc::now())))
        .await
        .map_err(ApiError::store)??;
    Ok(StatusCode::NO_CONTENT)
}
