//! What the chat engine needs of one applied config, built once per config: queues with their
//! routing rule and members, the chat settings, and each channel with its resolved secrets.
//!
//! Queue membership comes from users and roles (CH-02): `{user: NAME}` names a user,
//! `{role: NAME}` every user holding that role. A user in several queues is one operator with
//! one capacity (CH-06). Secrets come resolved with the config: the engine read them when it
//! applied it (an unreadable one made that object `error` then); they never leave this value
//! except to sign or compare.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::config::kinds::{
    ChannelProvider, ChatActionSpec, ChatChannelSpec, ChatQueueSpec, OperatorRef, Routing, UserSpec,
};
use crate::config::types::Secret;
use crate::config::{ConfigSet, Kind, Object};
use crate::connector::ResolvedSecrets;
use crate::store::chat::Viewer;

/// `Settings.chat.simultaneousChats` when there is no `Settings` object.
pub const DEFAULT_CAPACITY: u32 = 2;
/// `Settings.chat.acceptTimeout` when there is no `Settings` object.
pub const DEFAULT_ACCEPT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// One queue as the router sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSetup {
    /// toAll or leastBusy.
    pub routing: Routing,
    /// Auto-complete this long after the last operator message; `None` = never.
    pub completion_timeout: Option<Duration>,
    /// The operators (User names), sorted.
    pub members: Vec<String>,
}

/// One channel with what its inbound and outbound paths need.
#[derive(Debug, Clone)]
pub struct ChannelSetup {
    /// The provider.
    pub provider: ChannelProvider,
    /// Inactive channels accept nothing; their history is kept.
    pub active: bool,
    /// Where new chats go.
    pub queue: String,
    /// api: the inbound bearer token, or why it could not be read (never the value).
    pub inbound_token: Result<Secret, String>,
    /// api: where operator messages go, and the key that signs them.
    pub callback: Option<(url::Url, Result<Secret, String>)>,
    /// The channel's spec (provider fields: page id, account SID, apiBaseUrl, ...).
    pub spec: ChatChannelSpec,
    /// Its resolved secrets by JSON pointer (`/token`), or why they could not be read.
    pub secrets: Result<BTreeMap<String, Secret>, String>,
}

impl ChannelSetup {
    /// The secret at `pointer` (`/token`), or why it is unavailable (never the value).
    pub fn secret(&self, pointer: &str) -> Result<&Secret, String> {
        match &self.secrets {
            Err(e) => Err(e.clone()),
            Ok(map) => map
                .get(pointer)
                .ok_or_else(|| format!("the channel has no {}", &pointer[1..])),
        }
    }
}

/// One chat action (CH-07).
#[derive(Debug, Clone)]
pub struct ActionSetup {
    /// Its title (a `createCase` run names the case after it).
    pub title: String,
    /// The queue whose chats offer it.
    pub queue: String,
    /// `None` for the built-in `createCase`; otherwise where to POST and the key that signs
    /// the body (or why it could not be read, never the value).
    pub webhook: Option<(url::Url, Result<Secret, String>)>,
}

/// The chat view of one applied config.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Chats one operator handles at once, across all queues.
    pub capacity: u32,
    /// How long an assigned operator has to accept.
    pub accept_timeout: Duration,
    /// Queues by name.
    pub queues: BTreeMap<String, QueueSetup>,
    /// Channels by name.
    pub channels: BTreeMap<String, ChannelSetup>,
    /// Chat actions by name.
    pub actions: BTreeMap<String, ActionSetup>,
    /// `Settings.chat.notificationSound`, resolved against the Settings manifest's directory
    /// (CH-08).
    pub notification_sound: Option<std::path::PathBuf>,
    /// The public base URL providers call (`Settings.siteUrl`, or derived from `listen`).
    pub site: url::Url,
}

impl Snapshot {
    /// Builds the view of `set` with the secrets resolved when it was applied.
    pub fn build(set: &ConfigSet, resolved: &ResolvedSecrets) -> Snapshot {
        let secrets_of = |object: &Object| -> Result<BTreeMap<String, Secret>, String> {
            resolved
                .get(&(object.kind(), object.name.clone()))
                .cloned()
                .unwrap_or_else(|| Err(format!("the secrets of {} were not resolved", object.id())))
        };
        let chat = set.settings().map(|s| &s.chat);
        let queues = set
            .specs::<ChatQueueSpec>()
            .map(|(object, queue)| {
                (
                    object.name.clone(),
                    QueueSetup {
                        routing: queue.routing,
                        completion_timeout: queue.completion_timeout.as_ref().map(|d| d.get()),
                        members: members(set, queue),
                    },
                )
            })
            .collect();
        let channels = set
            .specs::<ChatChannelSpec>()
            .map(|(object, channel)| {
                let secrets = secrets_of(object);
                let secret = |pointer: &str| -> Result<Secret, String> {
                    match &secrets {
                        Err(e) => Err(e.clone()),
                        Ok(map) => map
                            .get(pointer)
                            .cloned()
                            .ok_or_else(|| format!("{} has no {pointer}", object.id())),
                    }
                };
                (
                    object.name.clone(),
                    ChannelSetup {
                        provider: channel.provider,
                        active: channel.active,
                        queue: channel.queue.clone(),
                        inbound_token: secret("/inboundToken"),
                        callback: channel
                            .callback_url
                            .as_ref()
                            .map(|u| (u.url().clone(), secret("/callbackSecret"))),
                        spec: channel.clone(),
                        secrets: secrets.clone(),
                    },
                )
            })
            .collect();
        let actions = set
            .specs::<ChatActionSpec>()
            .map(|(object, action)| {
                let webhook = action.webhook.as_ref().map(|w| {
                    let secret = secrets_of(object).and_then(|mut map| {
                        map.remove("/webhook/secret")
                            .ok_or_else(|| format!("{} has no webhook secret", object.id()))
                    });
                    (w.url.url().clone(), secret)
                });
                (
                    object.name.clone(),
                    ActionSetup {
                        title: action.title.clone(),
                        queue: action.queue.clone(),
                        webhook,
                    },
                )
            })
            .collect();
        let notification_sound = set
            .specs::<crate::config::kinds::SettingsSpec>()
            .next()
            .and_then(|(object, settings)| {
                let path = settings.chat.notification_sound.as_ref()?;
                Some(object.origin.dir().join(path))
            });
        Snapshot {
            actions,
            notification_sound,
            capacity: chat.map_or(DEFAULT_CAPACITY, |c| c.simultaneous_chats),
            accept_timeout: chat.map_or(DEFAULT_ACCEPT_TIMEOUT, |c| c.accept_timeout.get()),
            queues,
            channels,
            site: super::channels::site_url(set),
        }
    }

    /// The queues `user` operates in, sorted.
    pub fn queues_of(&self, user: &str) -> Vec<String> {
        self.queues
            .iter()
            .filter(|(_, q)| q.members.iter().any(|m| m == user))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// What `user` may see of the chats: everything for a supervisor (`CanManageChats`),
    /// otherwise chats offered to them, theirs, and their queues' chats.
    pub fn viewer(&self, user: &str, supervisor: bool) -> Option<Viewer> {
        (!supervisor).then(|| Viewer {
            user: user.to_owned(),
            queues: self.queues_of(user),
        })
    }

    /// Every operator of every queue, sorted.
    pub fn operators(&self) -> Vec<String> {
        let all: BTreeSet<&String> = self.queues.values().flat_map(|q| &q.members).collect();
        all.into_iter().cloned().collect()
    }
}

/// The users of a queue: named users that exist, and every user holding a named role.
fn members(set: &ConfigSet, queue: &ChatQueueSpec) -> Vec<String> {
    let mut found = BTreeSet::new();
    for member in &queue.operators {
        match member {
            OperatorRef::User(name) => {
                if set.object(Kind::User, name).is_some() {
                    found.insert(name.clone());
                }
            }
            OperatorRef::Role(role) => {
                for (object, user) in set.specs::<UserSpec>() {
                    if user.roles.iter().any(|r| r == role) {
                        found.insert(object.name.clone());
                    }
                }
            }
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn load(yaml: &str) -> (tempfile::TempDir, ConfigSet) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("chat.yaml"), yaml).expect("write");
        let set = crate::config::load(&[dir.path().to_path_buf()])
            .into_result()
            .expect("valid config");
        (dir, set)
    }

    #[test]
    fn queue_members_come_from_users_and_roles_and_one_user_has_one_capacity() {
        // REQ: CH-02
        let (_dir, set) = load(
            "apiVersion: switchboard/v1\nkind: Role\nmetadata: {name: agents}\nspec: {title: Agents}\n---\n\
             apiVersion: switchboard/v1\nkind: User\nmetadata: {name: ann}\nspec: {displayName: Ann, email: ann@example.com, roles: [agents]}\n---\n\
             apiVersion: switchboard/v1\nkind: User\nmetadata: {name: bob}\nspec: {displayName: Bob, email: bob@example.com}\n---\n\
             apiVersion: switchboard/v1\nkind: ChatQueue\nmetadata: {name: sales}\nspec: {title: Sales, routing: leastBusy, completionTimeout: 10m, operators: [{role: agents}, {user: bob}, {user: ann}]}\n---\n\
             apiVersion: switchboard/v1\nkind: ChatQueue\nmetadata: {name: support}\nspec: {title: Support, routing: toAll, operators: [{user: ann}]}\n",
        );
        let snapshot = Snapshot::build(&set, &crate::connector::resolve_all(&set));
        assert_eq!(snapshot.queues["sales"].members, vec!["ann", "bob"]);
        assert_eq!(
            snapshot.queues["sales"].completion_timeout,
            Some(Duration::from_secs(600))
        );
        assert_eq!(snapshot.queues["support"].completion_timeout, None);
        assert_eq!(snapshot.queues_of("ann"), vec!["sales", "support"]);
        assert_eq!(snapshot.operators(), vec!["ann", "bob"]);
        assert_eq!(snapshot.capacity, DEFAULT_CAPACITY);
        assert_eq!(snapshot.accept_timeout, DEFAULT_ACCEPT_TIMEOUT);
        assert!(
            snapshot.viewer("ann", true).is_none(),
            "a supervisor sees all"
        );
    }
}
