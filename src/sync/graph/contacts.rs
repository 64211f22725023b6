//! Microsoft 365 contacts through Microsoft Graph: the [`ContactRemote`] of a `ContactSync`
//! over a Mailbox on a `microsoft365` provider (CS-01).
//!
//! - Folders: the default folder (`Contacts`, listed at `/me/contacts`) and the folders
//!   `GET /me/contactFolders` lists (the default folder's child folders), or the ones
//!   `import.folders` names, by display name or id, in that order (new contacts go to the
//!   first). Nested folders below those are not synced.
//! - Listing: a delta round, `GET /me/contactFolders/{id}/contacts/delta` (the default folder:
//!   `/me/contacts/delta`) with `$select` of the modelled properties and
//!   `Prefer: odata.maxpagesize`; a page's `@odata.nextLink` is the page cursor, the last page's
//!   `@odata.deltaLink` the token of the next run. `@removed` entries are the removals. A round
//!   begun without a token is a full listing; its page cursors carry a `full ` prefix so a round
//!   resumed after a stop still says so.
//! - Items: an item's id is `{folder id}:{Graph id}` (`:` is not in Graph's base64 ids), so
//!   the engine knows which folder a linked item was in ([`ContactRemote::holds`]) when a full
//!   listing of that folder no longer lists it. The contact's JSON is kept as
//!   [`RemoteItem::data`]; its version is `@odata.etag`
//!   (else `W/"{changeKey}"`), sent as `If-Match` on `PATCH` / `DELETE` (`412` →
//!   [`Written::Conflict`], `404` → [`Written::Gone`]). An update sends only the modelled
//!   properties that changed, keeping what Switchboard does not model (a phone in another slot,
//!   an address's display name, addresses it cannot read); an update that changes nothing sends
//!   nothing.
//! - Create is retry-safe: the new contact carries a single-value extended property
//!   ([`UID_PROPERTY`]) holding the engine's stable uid, and before `POST` the folder is asked
//!   for a contact with that value (`$filter=singleValueExtendedProperties/Any(...)`, Graph's
//!   documented lookup), so a create retried after a crash finds the first one
//!   ([`Written::Exists`]; the engine then writes it as an update).
//!
//! Mapping (Graph → [`CardFields`]): `displayName` (else `givenName surname`) → name,
//! `emailAddresses[].address` → emails, `businessPhones`, `mobilePhone`, `homePhones` → phones,
//! `companyName` → company, `jobTitle`, `categories` → tags, `lastModifiedDateTime` → rev.
//! New phones go to `businessPhones`.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::connector::SyncContext;
use crate::store::records::{normalize_email, normalize_phone};

use super::Graph;
use crate::sync::remote::{
    ContactRemote, Cursor, Folder, Listed, Next, Page, RemoteError, RemoteFuture, RemoteItem,
    Write, Written,
};
use crate::sync::vcard::CardFields;

/// The default contact folder's id here (Graph's well-known name) and name.
pub const DEFAULT_FOLDER_ID: &str = "contacts";
/// The default contact folder's display name.
pub const DEFAULT_FOLDER_NAME: &str = "Contacts";
/// The single-value extended property (a named MAPI string property in Switchboard's own
/// property set) carrying the uid of a contact Switchboard created.
pub const UID_PROPERTY: &str = "String {d67b5e5c-433d-475f-b270-a20da7f33006} Name SwitchboardUid";
/// Contacts per page asked for.
const PAGE_SIZE: u32 = 100;
/// The properties listed and read.
const SELECT: &str = "displayName,givenName,surname,emailAddresses,businessPhones,mobilePhone,\
homePhones,companyName,jobTitle,categories,lastModifiedDateTime,changeKey";
/// The prefix of a page cursor of a full round.
const FULL: &str = "full ";

/// Microsoft 365 contacts of one mailbox.
pub struct GraphContactsRemote {
    graph: Arc<Graph>,
    /// `import.folders`: `None` for all.
    selected: Option<Vec<String>>,
}

impl GraphContactsRemote {
    /// The remote over `graph` importing from `selected` folders (`None`: all).
    pub fn new(graph: Arc<Graph>, selected: Option<Vec<String>>) -> GraphContactsRemote {
        GraphContactsRemote { graph, selected }
    }

    /// The path of a folder's contact collection.
    fn collection(folder: &Folder) -> Vec<&str> {
        if folder.id == DEFAULT_FOLDER_ID {
            vec!["me", "contacts"]
        } else {
            vec!["me", "contactFolders", &folder.id, "contacts"]
        }
    }

    async fn list_folders(&self, ctx: &SyncContext<'_>) -> Result<Vec<Folder>, RemoteError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct GraphFolder {
            id: String,
            display_name: String,
        }
        let url = self.graph.url(
            &["me", "contactFolders"],
            &[("$select", "id,displayName"), ("$top", "100")],
        );
        let listed: Vec<GraphFolder> = self.graph.all(ctx, "list contact folders", &url).await?;
        let all: Vec<Folder> = std::iter::once(Folder {
            id: DEFAULT_FOLDER_ID.into(),
            name: DEFAULT_FOLDER_NAME.into(),
        })
        .chain(listed.into_iter().map(|f| Folder {
            id: f.id,
            name: f.display_name,
        }))
        .collect();
        select_folders(all, self.selected.as_deref())
    }

    async fn page(
        &self,
        ctx: &SyncContext<'_>,
        folder: &Folder,
        cursor: Cursor<'_>,
    ) -> Result<Page<CardFields>, RemoteError> {
        let (url, full) = match cursor {
            Cursor::Start => {
                let mut path = Self::collection(folder);
                path.push("delta");
                (self.graph.url(&path, &[("$select", SELECT)]), true)
            }
            Cursor::Token(link) => (link.to_owned(), false),
            Cursor::Page(link) => match link.strip_prefix(FULL) {
                Some(link) => (link.to_owned(), true),
                None => (link.to_owned(), false),
            },
        };
        let what = format!("delta of contact folder {}", folder.name);
        let page = self
            .graph
            .page::<Value>(ctx, &what, &url, PAGE_SIZE)
            .await?;
        let next = match page.next() {
            Next::More(link) if full => Next::More(format!("{FULL}{link}")),
            other => other,
        };
        let mut items = Vec::new();
        let mut removed = Vec::new();
        for entry in page.value {
            if entry.get("@removed").is_some() {
                if let Some(id) = entry.get("id").and_then(Value::as_str) {
                    removed.push(link_id(&folder.id, id));
                }
                continue;
            }
            items.push(Listed::Item(item_of(&folder.id, entry)?));
        }
        Ok(Page {
            items,
            removed,
            next,
            full,
        })
    }

    async fn get_item(
        &self,
        ctx: &SyncContext<'_>,
        id: &str,
    ) -> Result<Option<RemoteItem<CardFields>>, RemoteError> {
        let url = self
            .graph
            .url(&["me", "contacts", split_id(id).1], &[("$select", SELECT)]);
        let answer = self
            .graph
            .call(ctx, "read contact", Method::GET, &url, &[], None)
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        item_of(split_id(id).0, answer.json("read contact")?).map(Some)
    }

    /// The contact of `folder` created with `uid`, if an earlier attempt made it.
    async fn find_created(
        &self,
        ctx: &SyncContext<'_>,
        folder: &Folder,
        uid: &str,
    ) -> Result<Option<RemoteItem<CardFields>>, RemoteError> {
        let filter = format!(
            "singleValueExtendedProperties/Any(ep: ep/id eq '{}' and ep/value eq '{}')",
            UID_PROPERTY,
            uid.replace('\'', "''")
        );
        let url = self.graph.url(
            &Self::collection(folder),
            &[("$filter", &filter), ("$select", SELECT), ("$top", "1")],
        );
        let page: super::GraphPage<Value> = self
            .graph
            .get(ctx, "look up a created contact", &url)
            .await?;
        page.value
            .into_iter()
            .next()
            .map(|c| item_of(&folder.id, c))
            .transpose()
    }

    async fn write_item(
        &self,
        ctx: &SyncContext<'_>,
        write: Write<'_, CardFields>,
    ) -> Result<Written<CardFields>, RemoteError> {
        let current = match write.current {
            Some(current) => current.clone(),
            None => match self.find_created(ctx, write.folder, write.uid).await? {
                // an earlier attempt created it: the engine links it and writes again
                Some(found) => return Ok(Written::Exists(found)),
                None => return self.create(ctx, &write).await,
            },
        };
        let old: Value = serde_json::from_str(&current.data).unwrap_or(Value::Null);
        let body = patch(&old, write.fields);
        if body.as_object().is_some_and(Map::is_empty) {
            return Ok(Written::Done(Some(current)));
        }
        let (folder, graph_id) = split_id(&current.id);
        let url = self.graph.url(&["me", "contacts", graph_id], &[]);
        let if_match = current.version.clone();
        let headers: Vec<(&str, &str)> = if_match
            .as_deref()
            .map(|v| ("If-Match", v))
            .into_iter()
            .collect();
        let answer = self
            .graph
            .call(
                ctx,
                "update contact",
                Method::PATCH,
                &url,
                &headers,
                Some(&body),
            )
            .await?;
        match answer.status {
            StatusCode::PRECONDITION_FAILED => Ok(Written::Conflict),
            StatusCode::NOT_FOUND | StatusCode::GONE => Ok(Written::Gone),
            _ => Ok(Written::Done(Some(item_of(
                folder,
                answer.json("update contact")?,
            )?))),
        }
    }

    async fn create(
        &self,
        ctx: &SyncContext<'_>,
        write: &Write<'_, CardFields>,
    ) -> Result<Written<CardFields>, RemoteError> {
        let mut body = patch(&Value::Null, write.fields);
        if let Some(body) = body.as_object_mut() {
            body.insert(
                "singleValueExtendedProperties".into(),
                json!([{"id": UID_PROPERTY, "value": write.uid}]),
            );
        }
        let url = self.graph.url(&Self::collection(write.folder), &[]);
        let answer = self
            .graph
            .call(ctx, "create contact", Method::POST, &url, &[], Some(&body))
            .await?;
        Ok(Written::Done(Some(item_of(
            &write.folder.id,
            answer.json("create contact")?,
        )?)))
    }

    async fn delete_item(
        &self,
        ctx: &SyncContext<'_>,
        id: &str,
        version: Option<&str>,
    ) -> Result<Written<CardFields>, RemoteError> {
        let url = self.graph.url(&["me", "contacts", split_id(id).1], &[]);
        let headers: Vec<(&str, &str)> = version.map(|v| ("If-Match", v)).into_iter().collect();
        let answer = self
            .graph
            .call(ctx, "delete contact", Method::DELETE, &url, &headers, None)
            .await?;
        match answer.status {
            StatusCode::PRECONDITION_FAILED => Ok(Written::Conflict),
            StatusCode::NOT_FOUND | StatusCode::GONE => Ok(Written::Gone),
            s if s.is_success() => Ok(Written::Done(None)),
            _ => Err(Graph::failure("delete contact", &answer)),
        }
    }
}

impl ContactRemote for GraphContactsRemote {
    fn folders<'a>(&'a self, ctx: &'a SyncContext<'a>) -> RemoteFuture<'a, Vec<Folder>> {
        Box::pin(self.list_folders(ctx))
    }

    fn list<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        folder: &'a Folder,
        cursor: Cursor<'a>,
    ) -> RemoteFuture<'a, Page<CardFields>> {
        Box::pin(self.page(ctx, folder, cursor))
    }

    fn read<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        _folder: &'a Folder,
        ids: &'a [String],
    ) -> RemoteFuture<'a, Vec<RemoteItem<CardFields>>> {
        // Graph lists whole items; this serves only an engine that asks anyway.
        Box::pin(async move {
            let mut items = Vec::new();
            for id in ids {
                if let Some(item) = self.get_item(ctx, id).await? {
                    items.push(item);
                }
            }
            Ok(items)
        })
    }

    fn get<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        id: &'a str,
    ) -> RemoteFuture<'a, Option<RemoteItem<CardFields>>> {
        Box::pin(self.get_item(ctx, id))
    }

    fn decode(&self, data: &str) -> CardFields {
        serde_json::from_str::<Value>(data)
            .map(|c| fields_of(&c))
            .unwrap_or_default()
    }

    fn holds(&self, folder: &Folder, id: &str) -> bool {
        split_id(id).0 == folder.id
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
        version: Option<&'a str>,
    ) -> RemoteFuture<'a, Written<CardFields>> {
        Box::pin(self.delete_item(ctx, id, version))
    }

    fn requests(&self) -> u64 {
        self.graph.requests()
    }
}

/// `all` in listing order, or the `selected` ones (by display name, case-insensitively, or
/// id) in the selection's order; a name no folder has fails the run with its name.
fn select_folders(
    all: Vec<Folder>,
    selected: Option<&[String]>,
) -> Result<Vec<Folder>, RemoteError> {
    let Some(selected) = selected else {
        return Ok(all);
    };
    let mut out: Vec<Folder> = Vec::new();
    let mut missing = Vec::new();
    for want in selected {
        match all
            .iter()
            .find(|f| f.id == *want || f.name.eq_ignore_ascii_case(want.trim()))
        {
            Some(f) if !out.contains(f) => out.push(f.clone()),
            Some(_) => {}
            None => missing.push(want.as_str()),
        }
    }
    if !missing.is_empty() {
        return Err(RemoteError::Failed(format!(
            "the mailbox has no contact folder named {}",
            missing.join(", ")
        )));
    }
    Ok(out)
}

/// The item id of Graph contact `id` in folder `folder`.
fn link_id(folder: &str, id: &str) -> String {
    format!("{folder}:{id}")
}

/// An item id's folder and Graph id.
fn split_id(id: &str) -> (&str, &str) {
    id.split_once(':').unwrap_or(("", id))
}

/// A Graph contact of `folder` as a remote item.
fn item_of(folder: &str, contact: Value) -> Result<RemoteItem<CardFields>, RemoteError> {
    let id = contact
        .get("id")
        .and_then(Value::as_str)
        .map(|id| link_id(folder, id))
        .ok_or_else(|| {
            RemoteError::Failed("Microsoft Graph returned a contact without an id".into())
        })?;
    let version = contact
        .get("@odata.etag")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            contact
                .get("changeKey")
                .and_then(Value::as_str)
                .map(|k| format!("W/\"{k}\""))
        });
    Ok(RemoteItem {
        id,
        version,
        fields: fields_of(&contact),
        data: contact.to_string(),
    })
}

fn text(contact: &Value, key: &str) -> Option<String> {
    contact
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn strings<'a>(contact: &'a Value, key: &str) -> impl Iterator<Item = &'a str> {
    contact
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn push_unique(list: &mut Vec<String>, value: Option<String>) {
    if let Some(v) = value
        && !list.contains(&v)
    {
        list.push(v);
    }
}

/// The phones of a contact in slot order: business, mobile, home (as written).
fn phones_raw(contact: &Value) -> Vec<String> {
    strings(contact, "businessPhones")
        .map(str::to_owned)
        .chain(text(contact, "mobilePhone"))
        .chain(strings(contact, "homePhones").map(str::to_owned))
        .collect()
}

/// The neutral fields of a Graph contact.
pub fn fields_of(contact: &Value) -> CardFields {
    let mut f = CardFields {
        name: text(contact, "displayName").or_else(|| {
            let name = [text(contact, "givenName"), text(contact, "surname")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            (!name.is_empty()).then_some(name)
        }),
        company: text(contact, "companyName"),
        job_title: text(contact, "jobTitle"),
        rev: text(contact, "lastModifiedDateTime"),
        ..CardFields::default()
    };
    for e in contact
        .get("emailAddresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        push_unique(
            &mut f.emails,
            e.get("address")
                .and_then(Value::as_str)
                .and_then(normalize_email),
        );
    }
    for p in phones_raw(contact) {
        push_unique(&mut f.phones, normalize_phone(&p));
    }
    for t in strings(contact, "categories") {
        push_unique(
            &mut f.tags,
            Some(t.trim().to_owned()).filter(|t| !t.is_empty()),
        );
    }
    f.uid = contact
        .get("singleValueExtendedProperties")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| {
            p.get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| id.eq_ignore_ascii_case(UID_PROPERTY))
        })
        .and_then(|p| text(p, "value"));
    f
}

/// The body that brings `current` (a Graph contact, or `null` for a new one) to `fields`: only
/// the modelled properties whose value changes; everything else stays as Graph holds it.
pub fn patch(current: &Value, fields: &CardFields) -> Value {
    let old = if current.is_null() {
        CardFields::default()
    } else {
        fields_of(current)
    };
    let new = current.is_null();
    let mut body = Map::new();
    if new || old.name != fields.name {
        let name = fields.name.clone().unwrap_or_default();
        let words: Vec<&str> = name.split_whitespace().collect();
        let (given, surname) = match words.split_last() {
            Some((last, rest)) if !rest.is_empty() => (rest.join(" "), (*last).to_owned()),
            Some((only, _)) => ((*only).to_owned(), String::new()),
            None => (String::new(), String::new()),
        };
        body.insert("displayName".into(), json!(name));
        body.insert("givenName".into(), json!(given));
        body.insert("surname".into(), json!(surname));
    }
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    if (new && !fields.emails.is_empty()) || sorted(&old.emails) != sorted(&fields.emails) {
        // kept entries stay as written (with their display name), unreadable ones too
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for e in current
            .get("emailAddresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match e
                .get("address")
                .and_then(Value::as_str)
                .and_then(normalize_email)
            {
                Some(a) if fields.emails.contains(&a) && !seen.contains(&a) => {
                    seen.push(a);
                    out.push(e.clone());
                }
                Some(_) => {}
                None => out.push(e.clone()),
            }
        }
        for e in &fields.emails {
            if !seen.contains(e) {
                out.push(
                    json!({"address": e, "name": fields.name.clone().unwrap_or_else(|| e.clone())}),
                );
            }
        }
        body.insert("emailAddresses".into(), Value::Array(out));
    }
    if (new && !fields.phones.is_empty()) || sorted(&old.phones) != sorted(&fields.phones) {
        let keep = |raw: &str, seen: &mut Vec<String>| match normalize_phone(raw) {
            Some(p) if fields.phones.contains(&p) && !seen.contains(&p) => {
                seen.push(p);
                true
            }
            Some(_) => false,
            None => true,
        };
        let mut seen = Vec::new();
        let mut business: Vec<String> = strings(current, "businessPhones")
            .filter(|p| keep(p, &mut seen))
            .map(str::to_owned)
            .collect();
        let mobile = text(current, "mobilePhone").filter(|p| keep(p, &mut seen));
        let home: Vec<String> = strings(current, "homePhones")
            .filter(|p| keep(p, &mut seen))
            .map(str::to_owned)
            .collect();
        business.extend(fields.phones.iter().filter(|p| !seen.contains(p)).cloned());
        if new || business != strings(current, "businessPhones").collect::<Vec<_>>() {
            body.insert("businessPhones".into(), json!(business));
        }
        if mobile != text(current, "mobilePhone") {
            body.insert("mobilePhone".into(), json!(mobile));
        }
        if home != strings(current, "homePhones").collect::<Vec<_>>() {
            body.insert("homePhones".into(), json!(home));
        }
    }
    if (new && fields.company.is_some()) || (!new && old.company != fields.company) {
        body.insert("companyName".into(), json!(fields.company));
    }
    if (new && fields.job_title.is_some()) || (!new && old.job_title != fields.job_title) {
        body.insert("jobTitle".into(), json!(fields.job_title));
    }
    if (new && !fields.tags.is_empty()) || sorted(&old.tags) != sorted(&fields.tags) {
        body.insert("categories".into(), json!(fields.tags));
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact() -> Value {
        json!({
            "@odata.etag": "W/\"EQAAABYAAAA\"",
            "id": "AAMkADh=",
            "changeKey": "EQAAABYAAAA",
            "displayName": "Ada Lovelace",
            "givenName": "Ada",
            "surname": "Lovelace",
            "emailAddresses": [
                {"address": "Ada@Example.com", "name": "Ada (work)"},
                {"address": "not an address", "name": "x"}
            ],
            "businessPhones": ["+44 20 7946 0000"],
            "mobilePhone": "+44 7700 900123",
            "homePhones": [],
            "companyName": "Analytical Engines",
            "jobTitle": "Programmer",
            "categories": ["customer", "VIP", "customer"],
            "lastModifiedDateTime": "2026-03-01T10:00:00Z",
            "birthday": "1815-12-10T00:00:00Z"
        })
    }

    #[test]
    fn a_graph_contact_reads_into_card_fields() {
        let item = item_of("contacts", contact()).expect("item");
        assert_eq!(item.id, "contacts:AAMkADh=");
        assert_eq!(split_id(&item.id), ("contacts", "AAMkADh="));
        assert_eq!(item.version.as_deref(), Some("W/\"EQAAABYAAAA\""));
        let f = item.fields;
        assert_eq!(f.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(f.emails, vec!["ada@example.com"]);
        assert_eq!(f.phones.len(), 2);
        assert_eq!(f.company.as_deref(), Some("Analytical Engines"));
        assert_eq!(f.job_title.as_deref(), Some("Programmer"));
        assert_eq!(f.tags, vec!["customer", "VIP"]);
        assert_eq!(f.rev.as_deref(), Some("2026-03-01T10:00:00Z"));
        // the JSON is kept whole, unmodelled properties included
        assert!(item.data.contains("birthday"));
    }

    #[test]
    fn a_name_comes_from_given_and_surname_and_a_change_key_is_a_version() {
        let item = item_of(
            "AQMk1",
            json!({"id": "1", "changeKey": "ck", "givenName": "Grace", "surname": "Hopper"}),
        )
        .expect("item");
        assert_eq!(item.fields.name.as_deref(), Some("Grace Hopper"));
        assert_eq!(item.version.as_deref(), Some("W/\"ck\""));
    }

    #[test]
    fn an_unchanged_contact_patches_nothing() {
        let c = contact();
        let f = fields_of(&c);
        assert_eq!(patch(&c, &f), json!({}));
        // tag order is not a change
        let mut g = f.clone();
        g.tags.reverse();
        assert_eq!(patch(&c, &g), json!({}));
    }

    #[test]
    fn a_patch_changes_only_modelled_fields_that_changed() {
        let c = contact();
        let mut f = fields_of(&c);
        f.job_title = Some("Analyst".into());
        f.emails.push("ada@lovelace.org".into());
        let body = patch(&c, &f);
        assert_eq!(body["jobTitle"], "Analyst");
        // the kept address keeps its display name; the unreadable one stays
        assert_eq!(
            body["emailAddresses"],
            json!([
                {"address": "Ada@Example.com", "name": "Ada (work)"},
                {"address": "not an address", "name": "x"},
                {"address": "ada@lovelace.org", "name": "Ada Lovelace"}
            ])
        );
        let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
        assert_eq!(keys.len(), 2, "{body}");
    }

    #[test]
    fn phones_keep_their_slots_and_new_ones_go_to_business() {
        let c = contact();
        let mut f = fields_of(&c);
        let mobile = normalize_phone("+44 7700 900123").expect("phone");
        f.phones.retain(|p| *p == mobile);
        f.phones.push("+15550100".into());
        let body = patch(&c, &f);
        assert_eq!(body["businessPhones"], json!(["+15550100"]));
        assert!(body.get("mobilePhone").is_none(), "{body}");
        assert!(body.get("homePhones").is_none(), "{body}");
    }

    #[test]
    fn a_new_contact_carries_every_field() {
        let f = CardFields {
            name: Some("Mary Jane Watson".into()),
            emails: vec!["mj@example.com".into()],
            phones: vec!["+15550101".into()],
            company: Some("Daily Bugle".into()),
            job_title: None,
            tags: vec!["customer".into()],
            ..CardFields::default()
        };
        let body = patch(&Value::Null, &f);
        assert_eq!(body["displayName"], "Mary Jane Watson");
        assert_eq!(body["givenName"], "Mary Jane");
        assert_eq!(body["surname"], "Watson");
        assert_eq!(body["companyName"], "Daily Bugle");
        assert_eq!(body["categories"], json!(["customer"]));
        assert_eq!(body["businessPhones"], json!(["+15550101"]));
        assert!(body.get("jobTitle").is_none());
        // and reads back as the same fields
        let mut back = fields_of(&body);
        back.rev = None;
        assert_eq!(back, f);
    }

    #[test]
    fn a_cleared_company_is_sent_as_null() {
        let c = contact();
        let mut f = fields_of(&c);
        f.company = None;
        assert_eq!(patch(&c, &f), json!({"companyName": null}));
    }

    #[test]
    fn folders_are_selected_by_name_or_id_in_the_selections_order() {
        let all = vec![
            Folder {
                id: DEFAULT_FOLDER_ID.into(),
                name: DEFAULT_FOLDER_NAME.into(),
            },
            Folder {
                id: "AQMk1".into(),
                name: "Customers".into(),
            },
            Folder {
                id: "AQMk2".into(),
                name: "Suppliers".into(),
            },
        ];
        assert_eq!(select_folders(all.clone(), None).expect("all").len(), 3);
        let picked = select_folders(all.clone(), Some(&["customers".into(), "contacts".into()]))
            .expect("picked");
        assert_eq!(picked[0].id, "AQMk1");
        assert_eq!(picked[1].id, DEFAULT_FOLDER_ID);
        let picked = select_folders(all.clone(), Some(&["AQMk2".into()])).expect("by id");
        assert_eq!(picked[0].name, "Suppliers");
        let err = select_folders(all, Some(&["Partners".into()])).expect_err("missing");
        assert!(err.to_string().contains("Partners"));
    }

    #[test]
    fn the_uid_property_reads_back() {
        let c = json!({"id": "1", "singleValueExtendedProperties": [{"id": UID_PROPERTY, "value": "switchboard-x-contact-1"}]});
        assert_eq!(
            fields_of(&c).uid.as_deref(),
            Some("switchboard-x-contact-1")
        );
    }
}
