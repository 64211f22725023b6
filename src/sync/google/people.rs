//! Google's People API as a [`ContactRemote`]: a `ContactSync` over a GoogleAccount (CS-03..05).
//!
//! - The sync covers one contact group, named by `google.group` ("Creatio" in the seed): its
//!   only [`Folder`], found with `contactGroups.list` and created with `contactGroups.create`
//!   on the first run when missing (CS-03).
//! - Listing is `people/me/connections` with `requestSyncToken=true`, then `syncToken` (the
//!   cursor); persons outside the group are left out. In a delta, a person deleted there
//!   (`metadata.deleted`) or no longer in the group is reported `removed` — the engine ignores
//!   ids it never linked. An expired sync token (`400` with reason `EXPIRED_SYNC_TOKEN`, or the
//!   older `410`) is [`RemoteError::TokenExpired`]. A page cursor carries the sync token of its
//!   listing too, as Google wants every page request to repeat the first one's parameters.
//! - A create (`people:createContact`) puts the person in the group and gives it the external
//!   id `{type: "switchboard", value: uid}`. Before creating, the group's persons carrying that
//!   id are looked up (from this run's listing, or one scan of the group's members), so a create
//!   retried after a crash answers [`Written::Exists`] instead of making a second person.
//! - An update (`people/{id}:updateContact`) sends the person as last read with the modelled
//!   fields replaced, its `etag`, and `updatePersonFields` naming only the modelled fields: what
//!   Switchboard does not model stays as Google holds it. A stale etag (`400
//!   FAILED_PRECONDITION`) is [`Written::Conflict`].
//! - Delete is `people/{id}:deleteContact` (Google takes no etag there); release removes the
//!   person from the group (`contactGroups/{id}/members:modify`), keeping it in Google.
//!
//! Mapping ([`fields_of`] / [`patch`]): `names` ↔ name (given + family), `emailAddresses` and
//! `phoneNumbers` ↔ emails and phones (normalised as the store does; entries kept keep their
//! `type`), the primary `organizations` entry ↔ company and job title, the `switchboard`
//! external id ↔ uid, the contact source's `updateTime` ↔ rev. Tags are not carried: in Google
//! the group membership stands for the `google.tag` marker, which the engine applies.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::Method;
use serde_json::{Value, json};

use crate::connector::SyncContext;
use crate::store::records::{normalize_email, normalize_phone};
use crate::sync::remote::{
    ContactRemote, Cursor, Folder, Listed, Next, Page, RemoteError, RemoteFuture, RemoteItem,
    TokenProvider, Write, Written,
};
use crate::sync::vcard::CardFields;

use super::{GoogleClient, GoogleError};

/// The person fields read on every call.
pub const PERSON_FIELDS: &str =
    "names,emailAddresses,phoneNumbers,organizations,memberships,externalIds,metadata";

/// The person fields an update replaces (the modelled ones).
pub const UPDATE_FIELDS: &str = "names,emailAddresses,phoneNumbers,organizations";

/// The external id type that carries a record's uid.
pub const EXTERNAL_ID_TYPE: &str = "switchboard";

/// How many persons one `people:batchGet` asks for (Google's limit).
const BATCH_GET: usize = 50;

/// Google's "My Contacts" system group, which a person must stay in when it leaves ours.
const MY_CONTACTS: &str = "contactGroups/myContacts";

/// A user's Google contacts, as the sync sees them.
pub struct PeopleRemote {
    client: GoogleClient,
    group_name: String,
    page_size: u32,
    group: Mutex<Option<Folder>>,
    /// Persons of the group with a `switchboard` external id, by that id.
    by_uid: Mutex<HashMap<String, RemoteItem<CardFields>>>,
    /// Every member of the group has been seen (a full listing, a scan, or a new group).
    scanned: AtomicBool,
}

impl std::fmt::Debug for PeopleRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeopleRemote")
            .field("client", &self.client)
            .field("group_name", &self.group_name)
            .finish_non_exhaustive()
    }
}

impl PeopleRemote {
    /// A remote of the People API at `base` (`https://people.googleapis.com`, or a
    /// GoogleAccount's `apiBaseUrl`) syncing the contact group named `group`.
    pub fn new(base: &str, tokens: Arc<dyn TokenProvider>, group: &str) -> PeopleRemote {
        PeopleRemote {
            client: GoogleClient::new(base, tokens),
            group_name: group.to_owned(),
            page_size: 500,
            group: Mutex::new(None),
            by_uid: Mutex::new(HashMap::new()),
            scanned: AtomicBool::new(false),
        }
    }

    /// Lists `size` persons a page (Google allows 1..=1000; the default is 500).
    pub fn with_page_size(mut self, size: u32) -> PeopleRemote {
        self.page_size = size.clamp(1, 1000);
        self
    }

    /// The group, found or created.
    async fn group(&self, ctx: &SyncContext<'_>) -> Result<Folder, RemoteError> {
        if let Some(folder) = self.group.lock().expect("group").clone() {
            return Ok(folder);
        }
        let folder = match self.find_group(ctx).await? {
            Some(folder) => folder,
            None => {
                let body = json!({"contactGroup": {"name": self.group_name}});
                match self
                    .client
                    .send(ctx, Method::POST, "v1/contactGroups", &[], Some(&body))
                    .await?
                {
                    Ok(group) => {
                        // A new group has no members: nothing to scan for earlier creates.
                        self.scanned.store(true, Ordering::Relaxed);
                        folder_of(&group, &self.group_name)?
                    }
                    // Made meanwhile by another client: use that one.
                    Err(e) if e.http == 409 => self.find_group(ctx).await?.ok_or_else(|| {
                        e.into_remote(&format!("creating contact group {:?}", self.group_name))
                    })?,
                    Err(e) => {
                        return Err(e.into_remote(&format!(
                            "creating contact group {:?}",
                            self.group_name
                        )));
                    }
                }
            }
        };
        *self.group.lock().expect("group") = Some(folder.clone());
        Ok(folder)
    }

    /// The user contact group named `group_name`, through every page of `contactGroups.list`.
    async fn find_group(&self, ctx: &SyncContext<'_>) -> Result<Option<Folder>, RemoteError> {
        let mut page: Option<String> = None;
        loop {
            let mut query = vec![("pageSize", "1000".to_owned())];
            if let Some(token) = &page {
                query.push(("pageToken", token.clone()));
            }
            let answer = self
                .client
                .call(ctx, Method::GET, "v1/contactGroups", &query, None)
                .await?;
            for group in answer["contactGroups"].as_array().into_iter().flatten() {
                if group["name"].as_str() == Some(self.group_name.as_str())
                    && group["groupType"].as_str() != Some("SYSTEM_CONTACT_GROUP")
                {
                    return folder_of(group, &self.group_name).map(Some);
                }
            }
            match answer["nextPageToken"].as_str() {
                Some(token) if !token.is_empty() => page = Some(token.to_owned()),
                _ => return Ok(None),
            }
        }
    }

    fn remember(&self, item: &RemoteItem<CardFields>) {
        let mut by_uid = self.by_uid.lock().expect("by_uid");
        by_uid.retain(|_, known| known.id != item.id);
        if let Some(uid) = &item.fields.uid {
            by_uid.insert(uid.clone(), item.clone());
        }
    }

    fn forget(&self, id: &str) {
        self.by_uid
            .lock()
            .expect("by_uid")
            .retain(|_, known| known.id != id);
    }

    /// The group's person an earlier attempt created for `uid`, if any.
    async fn find_created(
        &self,
        ctx: &SyncContext<'_>,
        group: &str,
        uid: &str,
    ) -> Result<Option<RemoteItem<CardFields>>, RemoteError> {
        if let Some(item) = self.by_uid.lock().expect("by_uid").get(uid) {
            return Ok(Some(item.clone()));
        }
        if self.scanned.load(Ordering::Relaxed) {
            return Ok(None);
        }
        // One scan of the group's members a remote's life; afterwards its own creates are
        // remembered as they are made.
        let answer = self
            .client
            .call(
                ctx,
                Method::GET,
                &format!("v1/{group}"),
                &[("maxMembers", "100000".to_owned())],
                None,
            )
            .await?;
        let members: Vec<String> = answer["memberResourceNames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        for item in self.batch_get(ctx, &members).await? {
            self.remember(&item);
        }
        self.scanned.store(true, Ordering::Relaxed);
        Ok(self.by_uid.lock().expect("by_uid").get(uid).cloned())
    }

    /// `people:batchGet` in chunks; persons not found (or deleted) are left out.
    async fn batch_get(
        &self,
        ctx: &SyncContext<'_>,
        ids: &[String],
    ) -> Result<Vec<RemoteItem<CardFields>>, RemoteError> {
        let mut items = Vec::new();
        for chunk in ids.chunks(BATCH_GET) {
            let mut query: Vec<(&str, String)> = chunk
                .iter()
                .map(|id| ("resourceNames", id.clone()))
                .collect();
            query.push(("personFields", PERSON_FIELDS.to_owned()));
            let answer = self
                .client
                .call(ctx, Method::GET, "v1/people:batchGet", &query, None)
                .await?;
            for response in answer["responses"].as_array().into_iter().flatten() {
                let failed = response["status"]["code"].as_i64().unwrap_or(0) != 0;
                let person = &response["person"];
                if !failed && person.is_object() && !is_deleted(person) {
                    items.extend(item_of(person));
                }
            }
        }
        Ok(items)
    }

    async fn list_page(
        &self,
        ctx: &SyncContext<'_>,
        folder: &Folder,
        cursor: Cursor<'_>,
    ) -> Result<Page<CardFields>, RemoteError> {
        let (sync, page) = match cursor {
            Cursor::Start => (None, None),
            Cursor::Token(token) => (Some(token.to_owned()), None),
            Cursor::Page(cursor) => decode_page_cursor(cursor),
        };
        let mut query = vec![
            ("personFields", PERSON_FIELDS.to_owned()),
            ("pageSize", self.page_size.to_string()),
            ("requestSyncToken", "true".to_owned()),
        ];
        if let Some(token) = &sync {
            query.push(("syncToken", token.clone()));
        }
        if let Some(token) = &page {
            query.push(("pageToken", token.clone()));
        }
        let answer = match self
            .client
            .send(ctx, Method::GET, "v1/people/me/connections", &query, None)
            .await?
        {
            Ok(answer) => answer,
            Err(e) if sync.is_some() && e.sync_token_expired() => {
                return Err(RemoteError::TokenExpired);
            }
            Err(e) => return Err(e.into_remote("listing the contacts")),
        };
        let full = sync.is_none();
        let mut items = Vec::new();
        let mut removed = Vec::new();
        for person in answer["connections"].as_array().into_iter().flatten() {
            let Some(id) = person["resourceName"].as_str() else {
                continue;
            };
            if is_deleted(person) {
                self.forget(id);
                removed.push(id.to_owned());
            } else if in_group(person, &folder.id) {
                if let Some(item) = item_of(person) {
                    self.remember(&item);
                    items.push(Listed::Item(item));
                }
            } else {
                self.forget(id);
                if !full {
                    // Left the group (or never was in it: the engine ignores unknown ids).
                    removed.push(id.to_owned());
                }
            }
        }
        let next = match answer["nextPageToken"].as_str() {
            Some(token) if !token.is_empty() => Next::More(encode_page_cursor(token, sync)),
            _ => {
                if full {
                    self.scanned.store(true, Ordering::Relaxed);
                }
                Next::Done(
                    answer["nextSyncToken"]
                        .as_str()
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned),
                )
            }
        };
        Ok(Page {
            items,
            removed,
            next,
            full,
        })
    }

    async fn write_item(
        &self,
        ctx: &SyncContext<'_>,
        write: Write<'_, CardFields>,
    ) -> Result<Written<CardFields>, RemoteError> {
        let Some(current) = write.current else {
            if let Some(found) = self.find_created(ctx, &write.folder.id, write.uid).await? {
                return Ok(Written::Exists(found));
            }
            let body = new_person(write.fields, &write.folder.id, write.uid);
            let person = self
                .client
                .call(
                    ctx,
                    Method::POST,
                    "v1/people:createContact",
                    &[("personFields", PERSON_FIELDS.to_owned())],
                    Some(&body),
                )
                .await?;
            let item = item_of(&person).ok_or_else(|| {
                RemoteError::Failed("createContact answered a person without a resourceName".into())
            })?;
            self.remember(&item);
            return Ok(Written::Done(Some(item)));
        };
        let read: Value = serde_json::from_str(&current.data).unwrap_or_else(|_| json!({}));
        let mut body = patch(Some(&read), write.fields);
        body["resourceName"] = json!(current.id);
        if let Some(etag) = &current.version {
            body["etag"] = json!(etag);
        }
        let path = format!("v1/{}:updateContact", current.id);
        let query = [
            ("updatePersonFields", UPDATE_FIELDS.to_owned()),
            ("personFields", PERSON_FIELDS.to_owned()),
        ];
        match self
            .client
            .send(ctx, Method::PATCH, &path, &query, Some(&body))
            .await?
        {
            Ok(person) => {
                let item = item_of(&person).ok_or_else(|| {
                    RemoteError::Failed(format!(
                        "updateContact of {} answered a person without a resourceName",
                        current.id
                    ))
                })?;
                self.remember(&item);
                Ok(Written::Done(Some(item)))
            }
            Err(e) if e.precondition_failed() => Ok(Written::Conflict),
            Err(e) if e.http == 404 => Ok(Written::Gone),
            Err(e) => Err(e.into_remote(&format!("updating {}", current.id))),
        }
    }

    async fn delete_item(
        &self,
        ctx: &SyncContext<'_>,
        id: &str,
    ) -> Result<Written<CardFields>, RemoteError> {
        let path = format!("v1/{id}:deleteContact");
        self.forget(id);
        match self
            .client
            .send(ctx, Method::DELETE, &path, &[], None)
            .await?
        {
            Ok(_) => Ok(Written::Done(None)),
            Err(e) if e.http == 404 => Ok(Written::Gone),
            Err(e) => Err(e.into_remote(&format!("deleting {id}"))),
        }
    }

    async fn modify_members(
        &self,
        ctx: &SyncContext<'_>,
        group: &str,
        add: &[&str],
        remove: &[&str],
    ) -> Result<Result<Value, GoogleError>, RemoteError> {
        let body = json!({"resourceNamesToAdd": add, "resourceNamesToRemove": remove});
        self.client
            .send(
                ctx,
                Method::POST,
                &format!("v1/{group}/members:modify"),
                &[],
                Some(&body),
            )
            .await
    }

    async fn release_item(
        &self,
        ctx: &SyncContext<'_>,
        id: &str,
    ) -> Result<Written<CardFields>, RemoteError> {
        let group = self.group(ctx).await?;
        self.forget(id);
        let what = format!("removing {id} from contact group {:?}", group.name);
        let mut kept_in_my_contacts = false;
        loop {
            let answer = match self.modify_members(ctx, &group.id, &[], &[id]).await? {
                Ok(answer) => answer,
                Err(e) if e.http == 404 => return Ok(Written::Gone),
                Err(e) => return Err(e.into_remote(&what)),
            };
            let lists = |key: &str| {
                answer[key]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(id)))
            };
            if lists("notFoundResourceNames") {
                return Ok(Written::Gone);
            }
            if !lists("canNotRemoveLastContactGroupResourceNames") {
                return Ok(Written::Done(None));
            }
            if kept_in_my_contacts {
                return Err(RemoteError::Failed(format!(
                    "{what}: Google keeps it as its last contact group"
                )));
            }
            // A person must stay in one group: keep it in My Contacts, then leave ours.
            self.modify_members(ctx, MY_CONTACTS, &[id], &[])
                .await?
                .map_err(|e| e.into_remote(&format!("adding {id} to My Contacts")))?;
            kept_in_my_contacts = true;
        }
    }
}

impl ContactRemote for PeopleRemote {
    fn folders<'a>(&'a self, ctx: &'a SyncContext<'a>) -> RemoteFuture<'a, Vec<Folder>> {
        Box::pin(async move { Ok(vec![self.group(ctx).await?]) })
    }

    fn list<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        folder: &'a Folder,
        cursor: Cursor<'a>,
    ) -> RemoteFuture<'a, Page<CardFields>> {
        Box::pin(self.list_page(ctx, folder, cursor))
    }

    fn read<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        _folder: &'a Folder,
        ids: &'a [String],
    ) -> RemoteFuture<'a, Vec<RemoteItem<CardFields>>> {
        Box::pin(self.batch_get(ctx, ids))
    }

    fn get<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        id: &'a str,
    ) -> RemoteFuture<'a, Option<RemoteItem<CardFields>>> {
        Box::pin(async move {
            let query = [("personFields", PERSON_FIELDS.to_owned())];
            match self
                .client
                .send(ctx, Method::GET, &format!("v1/{id}"), &query, None)
                .await?
            {
                Ok(person) if is_deleted(&person) => Ok(None),
                Ok(person) => Ok(item_of(&person)),
                Err(e) if e.http == 404 || e.http == 410 => Ok(None),
                Err(e) => Err(e.into_remote(&format!("reading {id}"))),
            }
        })
    }

    fn decode(&self, data: &str) -> CardFields {
        serde_json::from_str::<Value>(data)
            .map(|person| fields_of(&person))
            .unwrap_or_default()
    }

    /// Google's ids do not name the group; the one folder holds every linked person.
    fn holds(&self, _folder: &Folder, _id: &str) -> bool {
        true
    }

    fn write<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        write: Write<'a, CardFields>,
    ) -> RemoteFuture<'a, Written<CardFields>> {
        Box::pin(self.write_item(ctx, write))
    }

    fn delete<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        id: &'a str,
        _version: Option<&'a str>,
    ) -> RemoteFuture<'a, Written<CardFields>> {
        Box::pin(self.delete_item(ctx, id))
    }

    fn release<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        item: &'a RemoteItem<CardFields>,
    ) -> RemoteFuture<'a, Written<CardFields>> {
        Box::pin(self.release_item(ctx, &item.id))
    }

    fn requests(&self) -> u64 {
        self.client.requests()
    }
}

fn folder_of(group: &Value, name: &str) -> Result<Folder, RemoteError> {
    let id = group["resourceName"]
        .as_str()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            RemoteError::Failed(format!(
                "contact group {name:?} came without a resourceName"
            ))
        })?;
    Ok(Folder {
        id: id.to_owned(),
        name: group["name"].as_str().unwrap_or(name).to_owned(),
    })
}

/// A page cursor: Google's page token and the sync token of the listing it belongs to.
fn encode_page_cursor(page: &str, sync: Option<String>) -> String {
    json!({"pageToken": page, "syncToken": sync}).to_string()
}

fn decode_page_cursor(cursor: &str) -> (Option<String>, Option<String>) {
    match serde_json::from_str::<Value>(cursor) {
        Ok(v) if v.is_object() => (
            v["syncToken"].as_str().map(str::to_owned),
            v["pageToken"].as_str().map(str::to_owned),
        ),
        // A bare page token (of a full listing).
        _ => (None, Some(cursor.to_owned())),
    }
}

/// Whether a delta lists the person as deleted.
pub fn is_deleted(person: &Value) -> bool {
    person["metadata"]["deleted"].as_bool() == Some(true)
}

/// Whether the person is a member of `group` (`contactGroups/{id}`).
pub fn in_group(person: &Value, group: &str) -> bool {
    let id = group.strip_prefix("contactGroups/").unwrap_or(group);
    person["memberships"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| &m["contactGroupMembership"])
        .any(|m| {
            m["contactGroupResourceName"].as_str() == Some(group)
                || m["contactGroupId"].as_str() == Some(id)
        })
}

/// The person as a remote item (`None` without a `resourceName`).
pub fn item_of(person: &Value) -> Option<RemoteItem<CardFields>> {
    let id = person["resourceName"]
        .as_str()
        .filter(|id| !id.is_empty())?;
    Some(RemoteItem {
        id: id.to_owned(),
        version: person["etag"].as_str().map(str::to_owned),
        data: person.to_string(),
        fields: fields_of(person),
    })
}

fn entries<'v>(person: &'v Value, field: &str) -> impl Iterator<Item = &'v Value> {
    person[field].as_array().into_iter().flatten()
}

/// The entry of a list field marked primary, else the first.
fn primary<'v>(person: &'v Value, field: &str) -> Option<&'v Value> {
    entries(person, field)
        .find(|e| e["metadata"]["primary"].as_bool() == Some(true))
        .or_else(|| entries(person, field).next())
}

fn text(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn name_of(person: &Value) -> Option<String> {
    let name = primary(person, "names")?;
    text(&name["displayName"])
        .or_else(|| text(&name["unstructuredName"]))
        .or_else(|| {
            let parts: Vec<String> = [
                "honorificPrefix",
                "givenName",
                "middleName",
                "familyName",
                "honorificSuffix",
            ]
            .iter()
            .filter_map(|k| text(&name[*k]))
            .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
}

fn email_of(entry: &Value) -> Option<String> {
    entry["value"].as_str().and_then(normalize_email)
}

fn phone_of(entry: &Value) -> Option<String> {
    entry["canonicalForm"]
        .as_str()
        .and_then(normalize_phone)
        .or_else(|| entry["value"].as_str().and_then(normalize_phone))
}

/// The modelled fields of a person.
pub fn fields_of(person: &Value) -> CardFields {
    let mut f = CardFields {
        uid: entries(person, "externalIds")
            .find(|e| e["type"].as_str() == Some(EXTERNAL_ID_TYPE))
            .and_then(|e| text(&e["value"])),
        name: name_of(person),
        ..CardFields::default()
    };
    for email in entries(person, "emailAddresses").filter_map(email_of) {
        if !f.emails.contains(&email) {
            f.emails.push(email);
        }
    }
    for phone in entries(person, "phoneNumbers").filter_map(phone_of) {
        if !f.phones.contains(&phone) {
            f.phones.push(phone);
        }
    }
    if let Some(org) = primary(person, "organizations") {
        f.company = text(&org["name"]);
        f.job_title = text(&org["title"]);
    }
    f.rev = entries(&person["metadata"], "sources")
        .find(|s| s["type"].as_str() == Some("CONTACT"))
        .and_then(|s| text(&s["updateTime"]));
    f
}

/// Keeps the entries of `field` whose key is still wanted (their types and labels as read),
/// adds the new ones, in `wanted`'s order; an empty list removes the field.
fn patch_list(
    person: &mut Value,
    field: &str,
    wanted: &[String],
    key: fn(&Value) -> Option<String>,
) {
    let old: Vec<Value> = entries(person, field).cloned().collect();
    let list: Vec<Value> = wanted
        .iter()
        .map(|w| {
            old.iter()
                .find(|e| key(e).as_ref() == Some(w))
                .cloned()
                .unwrap_or_else(|| json!({"value": w}))
        })
        .collect();
    let object = person.as_object_mut().expect("a person is an object");
    if list.is_empty() {
        object.remove(field);
    } else {
        object.insert(field.to_owned(), Value::Array(list));
    }
}

/// The person to send: `current` (as last read; `None` for a new one) with the modelled fields
/// set to `fields`. Everything else in `current` goes back as read.
pub fn patch(current: Option<&Value>, fields: &CardFields) -> Value {
    let mut person = match current {
        Some(p) if p.is_object() => p.clone(),
        _ => json!({}),
    };
    if name_of(&person) != fields.name {
        let object = person.as_object_mut().expect("object");
        match fields
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            None => {
                object.remove("names");
            }
            Some(name) => {
                let mut entry = serde_json::Map::new();
                match name.rsplit_once(' ') {
                    Some((given, family)) => {
                        entry.insert("givenName".into(), json!(given.trim()));
                        entry.insert("familyName".into(), json!(family.trim()));
                    }
                    None => {
                        entry.insert("givenName".into(), json!(name));
                    }
                }
                object.insert("names".into(), json!([entry]));
            }
        }
    }
    patch_list(&mut person, "emailAddresses", &fields.emails, email_of);
    patch_list(&mut person, "phoneNumbers", &fields.phones, phone_of);

    let mut orgs: Vec<Value> = entries(&person, "organizations").cloned().collect();
    let at = orgs
        .iter()
        .position(|e| e["metadata"]["primary"].as_bool() == Some(true))
        .unwrap_or(0);
    if at >= orgs.len() {
        orgs.push(json!({}));
    }
    {
        let org = orgs[at]
            .as_object_mut()
            .expect("an organization is an object");
        for (key, value) in [("name", &fields.company), ("title", &fields.job_title)] {
            match value {
                Some(v) => {
                    org.insert(key.into(), json!(v));
                }
                None => {
                    org.remove(key);
                }
            }
        }
    }
    let meaningful = |o: &Value| {
        o.as_object().is_some_and(|o| {
            o.iter().any(|(k, v)| {
                !matches!(
                    k.as_str(),
                    "metadata" | "type" | "formattedType" | "current"
                ) && !v.is_null()
            })
        })
    };
    orgs.retain(meaningful);
    let object = person.as_object_mut().expect("object");
    if orgs.is_empty() {
        object.remove("organizations");
    } else {
        object.insert("organizations".into(), Value::Array(orgs));
    }
    person
}

/// A new person for `fields`, in `group`, carrying the record's `uid` as external id.
pub fn new_person(fields: &CardFields, group: &str, uid: &str) -> Value {
    let mut person = patch(None, fields);
    person["memberships"] =
        json!([{"contactGroupMembership": {"contactGroupResourceName": group}}]);
    person["externalIds"] = json!([{"type": EXTERNAL_ID_TYPE, "value": uid}]);
    person
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ada() -> Value {
        json!({
            "resourceName": "people/c42",
            "etag": "%EgUBAi43PRoEAQIFByIMR0xqOUtYbE1jVGc9",
            "metadata": {"sources": [
                {"type": "PROFILE", "id": "1", "updateTime": "2020-01-01T00:00:00Z"},
                {"type": "CONTACT", "id": "2a", "etag": "#src", "updateTime": "2026-12-01T10:00:00.123Z"}
            ]},
            "names": [{"metadata": {"primary": true}, "displayName": "Ada Lovelace",
                       "givenName": "Ada", "familyName": "Lovelace"}],
            "emailAddresses": [
                {"metadata": {"primary": true}, "value": "Ada@Example.COM", "type": "work"},
                {"value": "ada@example.com", "type": "home"},
                {"value": "not an address"}
            ],
            "phoneNumbers": [{"value": "+44 20 7946 0018", "canonicalForm": "+442079460018", "type": "mobile"}],
            "organizations": [{"metadata": {"primary": true}, "name": "Analytical Engines",
                               "title": "Programmer", "department": "R&D", "type": "work"}],
            "memberships": [
                {"contactGroupMembership": {"contactGroupId": "myContacts", "contactGroupResourceName": "contactGroups/myContacts"}},
                {"contactGroupMembership": {"contactGroupId": "7a1", "contactGroupResourceName": "contactGroups/7a1"}}
            ],
            "externalIds": [{"type": "account", "value": "A-1"}, {"type": "switchboard", "value": "rec-1"}],
            "addresses": [{"streetAddress": "12 St James's Square", "type": "home"}],
            "biographies": [{"value": "Notes kept in Google", "contentType": "TEXT_PLAIN"}]
        })
    }

    #[test]
    fn reads_the_modelled_fields_of_a_person() {
        let f = fields_of(&ada());
        assert_eq!(f.uid.as_deref(), Some("rec-1"));
        assert_eq!(f.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(
            f.emails,
            vec!["ada@example.com"],
            "normalised, no duplicates"
        );
        assert_eq!(f.phones, vec![normalize_phone("+442079460018").unwrap()]);
        assert_eq!(f.company.as_deref(), Some("Analytical Engines"));
        assert_eq!(f.job_title.as_deref(), Some("Programmer"));
        assert!(f.tags.is_empty(), "the group stands for the tag");
        assert_eq!(
            f.rev.as_deref(),
            Some("2026-12-01T10:00:00.123Z"),
            "the contact source's time"
        );
    }

    #[test]
    fn a_name_without_display_name_is_put_together() {
        let p = json!({"names": [{"honorificPrefix": "Dr.", "givenName": "Grace", "familyName": "Hopper"}]});
        assert_eq!(fields_of(&p).name.as_deref(), Some("Dr. Grace Hopper"));
        let p = json!({"names": [{"unstructuredName": "Grace Hopper"}]});
        assert_eq!(fields_of(&p).name.as_deref(), Some("Grace Hopper"));
        assert_eq!(fields_of(&json!({})), CardFields::default());
    }

    #[test]
    fn membership_is_read_by_resource_name_or_id() {
        assert!(in_group(&ada(), "contactGroups/7a1"));
        assert!(!in_group(&ada(), "contactGroups/other"));
        let by_id = json!({"memberships": [{"contactGroupMembership": {"contactGroupId": "7a1"}}]});
        assert!(in_group(&by_id, "contactGroups/7a1"));
        assert!(!is_deleted(&ada()));
        assert!(is_deleted(
            &json!({"resourceName": "people/c1", "metadata": {"deleted": true}})
        ));
    }

    #[test]
    fn an_unchanged_contact_patches_to_the_person_as_read() {
        let person = ada();
        let mut fields = fields_of(&person);
        fields.rev = None;
        let patched = patch(Some(&person), &fields);
        // Only the unparseable and the duplicate e-mail go (they are not the contact's).
        let mut expected = person.clone();
        expected["emailAddresses"] = json!([person["emailAddresses"][0]]);
        assert_eq!(patched, expected);
    }

    #[test]
    fn a_patch_changes_only_the_modelled_fields() {
        let person = ada();
        let fields = CardFields {
            name: Some("Augusta Ada King".into()),
            emails: vec!["ada@example.com".into(), "countess@lovelace.example".into()],
            phones: vec![],
            company: Some("Babbage & Co".into()),
            job_title: None,
            ..CardFields::default()
        };
        let p = patch(Some(&person), &fields);
        assert_eq!(
            p["names"],
            json!([{"givenName": "Augusta Ada", "familyName": "King"}])
        );
        assert_eq!(
            p["emailAddresses"],
            json!([person["emailAddresses"][0], {"value": "countess@lovelace.example"}]),
            "the kept address keeps its type"
        );
        assert!(p.get("phoneNumbers").is_none(), "no phones: the field goes");
        assert_eq!(
            p["organizations"],
            json!([{"metadata": {"primary": true}, "name": "Babbage & Co",
                    "department": "R&D", "type": "work"}])
        );
        for kept in [
            "addresses",
            "biographies",
            "memberships",
            "externalIds",
            "metadata",
            "etag",
            "resourceName",
        ] {
            assert_eq!(p[kept], person[kept], "{kept} goes back as read");
        }
        let back = fields_of(&json!({
            "names": [{"displayName": "Augusta Ada King"}],
            "emailAddresses": p["emailAddresses"], "organizations": p["organizations"]
        }));
        assert_eq!(back.emails, fields.emails);
        assert_eq!(back.company, fields.company);
        assert_eq!(back.name, fields.name);
    }

    #[test]
    fn clearing_the_company_drops_an_empty_organization() {
        let person = json!({"organizations": [{"name": "X", "title": "Y", "type": "work"}]});
        let p = patch(Some(&person), &CardFields::default());
        assert!(p.get("organizations").is_none());
        assert!(p.get("names").is_none());
    }

    #[test]
    fn a_new_person_joins_the_group_with_the_uid() {
        let fields = CardFields {
            name: Some("Grace".into()),
            emails: vec!["grace@navy.example".into()],
            phones: vec!["+15550100".into()],
            ..CardFields::default()
        };
        let p = new_person(&fields, "contactGroups/7a1", "rec-9");
        assert_eq!(
            p,
            json!({
                "names": [{"givenName": "Grace"}],
                "emailAddresses": [{"value": "grace@navy.example"}],
                "phoneNumbers": [{"value": "+15550100"}],
                "memberships": [{"contactGroupMembership": {"contactGroupResourceName": "contactGroups/7a1"}}],
                "externalIds": [{"type": "switchboard", "value": "rec-9"}]
            })
        );
        assert_eq!(fields_of(&p).uid.as_deref(), Some("rec-9"));
    }

    #[test]
    fn page_cursors_carry_the_listings_sync_token() {
        let c = encode_page_cursor("p2", Some("st1".into()));
        assert_eq!(
            decode_page_cursor(&c),
            (Some("st1".into()), Some("p2".into()))
        );
        let c = encode_page_cursor("p2", None);
        assert_eq!(decode_page_cursor(&c), (None, Some("p2".into())));
        assert_eq!(decode_page_cursor("raw"), (None, Some("raw".into())));
    }

    #[test]
    fn an_item_keeps_the_person_as_read() {
        let item = item_of(&ada()).expect("item");
        assert_eq!(item.id, "people/c42");
        assert_eq!(
            item.version.as_deref(),
            Some("%EgUBAi43PRoEAQIFByIMR0xqOUtYbE1jVGc9")
        );
        assert_eq!(serde_json::from_str::<Value>(&item.data).unwrap(), ada());
        assert!(item_of(&json!({"etag": "x"})).is_none());
    }
}
