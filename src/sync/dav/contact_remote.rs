//! The CardDAV side of `ContactSync` ([`ContactRemote`] over a `DavAccount`, BX-01).
//!
//! - *Folders*: the address books found through discovery that `import.folders` selects (by
//!   display name or path, or `all`), remembered between runs under the `collections`
//!   checkpoint, keyed by the URL, the login and the selection — a no-change run then costs one
//!   `REPORT` per address book.
//! - *Listing*: `sync-collection` from the token (RFC 6578); a refused token is
//!   [`RemoteError::TokenExpired`] (the engine lists again from the start). A server without
//!   `sync-collection` is listed by `PROPFIND` with ETags as a full listing every run, and that
//!   is remembered (`listing <collection>` = `propfind`). Entries come as versions only; the
//!   engine reads the changed ones with `addressbook-multiget`.
//! - *Writes*: a linked card is patched (only the modelled properties change, `vcard.rs`) and
//!   written with `If-Match`; a create is a `PUT` with `If-None-Match: *` under `{uid}.vcf`, so
//!   a retry after a crash meets its own earlier card (412) and adopts it.

use url::Url;

use crate::config::types::AllOrList;
use crate::connector::SyncContext;
use crate::sync::remote::{
    ContactRemote, Cursor, Folder, Listed, Next, Page, RemoteError, RemoteFuture, RemoteItem,
    Write, Written,
};
use crate::sync::vcard::{self, CardFields};

use super::{Collection, DavClient, DavError, Item, MULTIGET_BATCH, join};

/// The `listing <collection>` checkpoint of a collection listed by PROPFIND and ETags (its
/// server has no `sync-collection`); absent: listed by `sync-collection`.
const LISTING_PROPFIND: &str = "propfind";

/// A `DavAccount`'s address books.
pub struct DavContacts {
    /// The sync's origin (`ContactSync/NAME`): the owner of the checkpoints kept here.
    origin: String,
    url: Url,
    folders: AllOrList,
    /// The key under which discovered collections are remembered.
    collections_key: String,
    client: DavClient,
}

fn dav_err(e: DavError) -> RemoteError {
    RemoteError::from(e)
}

fn store_err(e: crate::store::StoreError) -> RemoteError {
    RemoteError::Failed(e.to_string())
}

fn item_of(item: Item) -> RemoteItem<CardFields> {
    let fields = vcard::parse(&item.data);
    RemoteItem {
        id: item.href,
        version: item.etag,
        data: item.data,
        fields,
    }
}

impl DavContacts {
    /// The address books of `url` seen with `client`, selected by `folders`. `collections_key`
    /// changes when the URL, the login or the selection does (discovery is then redone).
    pub fn new(
        origin: String,
        url: Url,
        folders: AllOrList,
        collections_key: String,
        client: DavClient,
    ) -> DavContacts {
        DavContacts {
            origin,
            url,
            folders,
            collections_key,
            client,
        }
    }

    fn collection_url(folder: &Folder) -> Result<Url, RemoteError> {
        Url::parse(&folder.id)
            .map_err(|e| RemoteError::Failed(format!("address book {}: {e}", folder.id)))
    }

    async fn checkpoint(
        &self,
        ctx: &SyncContext<'_>,
        scope: String,
    ) -> Result<Option<String>, RemoteError> {
        crate::sync::checkpoints::get(ctx, &self.origin, &scope)
            .await
            .map_err(store_err)
    }

    async fn set_checkpoint(
        &self,
        ctx: &SyncContext<'_>,
        scope: String,
        value: String,
    ) -> Result<(), RemoteError> {
        crate::sync::checkpoints::set(ctx, &self.origin, &scope, Some(&value))
            .await
            .map_err(store_err)
    }

    async fn discover(&self, ctx: &SyncContext<'_>) -> Result<Vec<Folder>, RemoteError> {
        if let Some(text) = self.checkpoint(ctx, "collections".into()).await?
            && let Some((key, urls)) = text.split_once('\n')
            && key == self.collections_key
        {
            let folders: Vec<Folder> = urls
                .lines()
                .filter(|u| Url::parse(u).is_ok())
                .map(|u| Folder {
                    id: u.to_owned(),
                    name: u.to_owned(),
                })
                .collect();
            if !folders.is_empty() {
                return Ok(folders);
            }
        }
        let found = self.client.discover(&self.url).await.map_err(dav_err)?;
        let selected = select(&found, &self.folders);
        if selected.is_empty() {
            let names: Vec<String> = found
                .iter()
                .map(|c| {
                    c.display_name
                        .clone()
                        .unwrap_or_else(|| c.url.path().to_owned())
                })
                .collect();
            return Err(RemoteError::Failed(format!(
                "no address book matches import.folders (found: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        }
        for c in found
            .iter()
            .filter(|c| c.sync_collection == Some(false) && selected.contains(&c.url))
        {
            self.set_checkpoint(ctx, format!("listing {}", c.url), LISTING_PROPFIND.into())
                .await?;
        }
        let text = std::iter::once(self.collections_key.clone())
            .chain(selected.iter().map(|u| u.to_string()))
            .collect::<Vec<_>>()
            .join("\n");
        self.set_checkpoint(ctx, "collections".into(), text).await?;
        Ok(selected
            .into_iter()
            .map(|u| Folder {
                id: u.to_string(),
                name: u.to_string(),
            })
            .collect())
    }

    /// A full listing by PROPFIND and ETags (no token).
    async fn list_by_etags(&self, collection: &Url) -> Result<Page<CardFields>, RemoteError> {
        let changed = self.client.list_etags(collection).await.map_err(dav_err)?;
        Ok(Page {
            items: changed
                .into_iter()
                .map(|(id, version)| Listed::Version { id, version })
                .collect(),
            removed: Vec::new(),
            next: Next::Done(None),
            full: true,
        })
    }

    async fn list_collection(
        &self,
        ctx: &SyncContext<'_>,
        folder: &Folder,
        cursor: Cursor<'_>,
    ) -> Result<Page<CardFields>, RemoteError> {
        let collection = Self::collection_url(folder)?;
        let listing_scope = format!("listing {collection}");
        if self
            .checkpoint(ctx, listing_scope.clone())
            .await?
            .as_deref()
            == Some(LISTING_PROPFIND)
        {
            return self.list_by_etags(&collection).await;
        }
        let token = match cursor {
            Cursor::Token(t) => Some(t),
            Cursor::Start | Cursor::Page(_) => None,
        };
        match self.client.sync_collection(&collection, token).await {
            Err(DavError::SyncUnsupported) => {
                tracing::info!(sync = %self.origin, collection = %collection, "the server does not do sync-collection; comparing the ETags of a PROPFIND listing instead");
                self.set_checkpoint(ctx, listing_scope, LISTING_PROPFIND.into())
                    .await?;
                self.list_by_etags(&collection).await
            }
            Err(DavError::InvalidSyncToken) => {
                tracing::warn!(sync = %self.origin, collection = %collection, "the server refused the sync token; listing the address book again");
                Err(RemoteError::TokenExpired)
            }
            Err(e) => Err(dav_err(e)),
            Ok(delta) => Ok(Page {
                items: delta
                    .changed
                    .into_iter()
                    .map(|(id, version)| Listed::Version { id, version })
                    .collect(),
                removed: delta.removed,
                next: Next::Done(delta.token),
                full: token.is_none(),
            }),
        }
    }

    async fn write_card(
        &self,
        write: Write<'_, CardFields>,
    ) -> Result<Written<CardFields>, RemoteError> {
        let (url, if_match, card) = match write.current {
            Some(current) => (
                join(&self.url, &current.id).map_err(dav_err)?,
                Some(current.version.clone().unwrap_or_else(|| "*".into())),
                vcard::patch(Some(&current.data), write.fields, write.uid),
            ),
            None => (
                join(
                    &Self::collection_url(write.folder)?,
                    &format!("{}.vcf", write.uid),
                )
                .map_err(dav_err)?,
                None,
                vcard::patch(None, write.fields, write.uid),
            ),
        };
        match self
            .client
            .put(&url, &card, if_match.as_deref())
            .await
            .map_err(dav_err)?
        {
            super::Written::Ok(etag) => {
                let fields = vcard::parse(&card);
                Ok(Written::Done(Some(RemoteItem {
                    id: url.path().to_owned(),
                    version: etag,
                    data: card,
                    fields,
                })))
            }
            super::Written::PreconditionFailed if write.current.is_some() => Ok(Written::Conflict),
            super::Written::PreconditionFailed => {
                // a create meeting an existing card: an earlier attempt's, under the same UID
                match self.client.get(&url).await.map_err(dav_err)? {
                    Some(item) => Ok(Written::Exists(item_of(item))),
                    None => Ok(Written::Conflict),
                }
            }
        }
    }
}

impl ContactRemote for DavContacts {
    fn folders<'a>(&'a self, ctx: &'a SyncContext<'a>) -> RemoteFuture<'a, Vec<Folder>> {
        Box::pin(self.discover(ctx))
    }

    fn list<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        folder: &'a Folder,
        cursor: Cursor<'a>,
    ) -> RemoteFuture<'a, Page<CardFields>> {
        Box::pin(self.list_collection(ctx, folder, cursor))
    }

    fn read<'a>(
        &'a self,
        _ctx: &'a SyncContext<'a>,
        folder: &'a Folder,
        ids: &'a [String],
    ) -> RemoteFuture<'a, Vec<RemoteItem<CardFields>>> {
        Box::pin(async move {
            let collection = Self::collection_url(folder)?;
            let mut out = Vec::with_capacity(ids.len());
            for batch in ids.chunks(MULTIGET_BATCH) {
                let items = self
                    .client
                    .multiget(&collection, batch)
                    .await
                    .map_err(dav_err)?;
                out.extend(items.into_iter().map(item_of));
            }
            Ok(out)
        })
    }

    fn get<'a>(
        &'a self,
        _ctx: &'a SyncContext<'a>,
        id: &'a str,
    ) -> RemoteFuture<'a, Option<RemoteItem<CardFields>>> {
        Box::pin(async move {
            let url = join(&self.url, id).map_err(dav_err)?;
            Ok(self.client.get(&url).await.map_err(dav_err)?.map(item_of))
        })
    }

    fn decode(&self, data: &str) -> CardFields {
        vcard::parse(data)
    }

    fn holds(&self, folder: &Folder, id: &str) -> bool {
        Url::parse(&folder.id).is_ok_and(|u| id.starts_with(u.path()))
    }

    fn write<'a>(
        &'a self,
        _ctx: &'a SyncContext<'a>,
        write: Write<'a, CardFields>,
    ) -> RemoteFuture<'a, Written<CardFields>> {
        Box::pin(self.write_card(write))
    }

    fn delete<'a>(
        &'a self,
        _ctx: &'a SyncContext<'a>,
        id: &'a str,
        version: Option<&'a str>,
    ) -> RemoteFuture<'a, Written<CardFields>> {
        Box::pin(async move {
            let url = join(&self.url, id).map_err(dav_err)?;
            Ok(
                match self.client.delete(&url, version).await.map_err(dav_err)? {
                    super::Written::Ok(_) => Written::Done(None),
                    super::Written::PreconditionFailed => Written::Conflict,
                },
            )
        })
    }

    fn requests(&self) -> u64 {
        self.client.requests()
    }
}

/// The collections of `found` that `folders` selects (by display name or path).
fn select(found: &[Collection], folders: &AllOrList) -> Vec<Url> {
    match folders {
        AllOrList::All(_) => found.iter().map(|c| c.url.clone()).collect(),
        AllOrList::List(names) => found
            .iter()
            .filter(|c| {
                names.iter().any(|n| {
                    c.display_name.as_deref() == Some(n.as_str())
                        || c.url.path().trim_end_matches('/') == n.trim_end_matches('/')
                        || c.url.as_str().trim_end_matches('/') == n.trim_end_matches('/')
                })
            })
            .map(|c| c.url.clone())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_by_display_name_or_path() {
        let found = vec![
            Collection {
                url: Url::parse("http://h/a/contacts/").expect("url"),
                display_name: Some("Contacts".into()),
                sync_collection: None,
            },
            Collection {
                url: Url::parse("http://h/a/work/").expect("url"),
                display_name: None,
                sync_collection: Some(false),
            },
        ];
        let pick = |names: &[&str]| {
            select(
                &found,
                &AllOrList::List(names.iter().map(|s| (*s).to_owned()).collect()),
            )
        };
        assert_eq!(pick(&["Contacts"]).len(), 1);
        assert_eq!(pick(&["/a/work"])[0].path(), "/a/work/");
        assert!(pick(&["nope"]).is_empty());
    }
}
