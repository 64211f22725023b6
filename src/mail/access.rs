//! Who may read, send with and configure which mailbox (MB-04, EP-09).
//!
//! The owner may do everything with their mailbox. Other users get rights through the
//! mailbox's `access` entries, given to them by name or to one of their roles: `readEmails`
//! (see its letters), `sendEmails` (send as it — and so see its mail too, as the seed says a
//! sender "sees its mail in the panel"), `configure` (act on its settings: in a declarative
//! config, that is asking for its sync — see [`may_sync`]). Administrators get no implicit
//! right to read others' mail. Pure: reads the config only.

use std::collections::BTreeSet;

use crate::config::ConfigSet;
use crate::config::kinds::{MailboxAccess, MailboxSpec, Operation, UserSpec};

/// A right on a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    /// Read its letters.
    Read,
    /// Send as it.
    Send,
    /// Change its settings (the seed's "Настройка ящика"; here: request its sync).
    Configure,
}

fn grants(entry: &MailboxAccess, right: Right) -> bool {
    match right {
        Right::Read => entry.read_emails || entry.send_emails,
        Right::Send => entry.send_emails,
        Right::Configure => entry.configure,
    }
}

/// Whether `user` has `right` on `mailbox`.
pub fn allowed(set: &ConfigSet, user: &str, mailbox: &MailboxSpec, right: Right) -> bool {
    if mailbox.owner == user {
        return true;
    }
    let roles: &[String] = set
        .get::<UserSpec>(user)
        .map_or(&[], |u| u.roles.as_slice());
    mailbox.access.iter().any(|entry| {
        let holder = entry.user.as_deref() == Some(user)
            || entry.role.as_ref().is_some_and(|r| roles.contains(r));
        holder && grants(entry, right)
    })
}

/// Why a caller may act on a mailbox's settings (its sync).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncGrant {
    /// The caller holds `CanManageAdministration` (EP-09).
    Administration,
    /// The caller owns the mailbox.
    Owner,
    /// The caller holds the mailbox's `configure` right (and, for a shared mailbox,
    /// `CanManageSharedMailboxSync`).
    Configure,
}

/// Why a caller may not act on a mailbox's settings; its `Display` is the 403 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncRefusal {
    /// No right on the mailbox at all.
    #[error(
        "user {user} may not sync Mailbox/{mailbox}: that takes CanManageAdministration, being its owner, or its `configure` right"
    )]
    NoRight {
        /// The caller.
        user: String,
        /// The mailbox.
        mailbox: String,
    },
    /// `configure` on a shared mailbox without the system operation that goes with it.
    #[error(
        "user {user} has the `configure` right on the shared mailbox Mailbox/{mailbox} but lacks the operation CanManageSharedMailboxSync"
    )]
    SharedSyncOperation {
        /// The caller.
        user: String,
        /// The mailbox.
        mailbox: String,
    },
}

/// Whether `user`, holding `operations`, may act on the settings of the mailbox `name`
/// (EP-09, MB-04): request its sync through the operator API.
///
/// - `CanManageAdministration` may act on every mailbox (the seed's administrator);
/// - the owner may act on their own mailbox (they set it up: for a shared one, config
///   validation makes sure they hold both shared-mailbox operations);
/// - a holder of the mailbox's `configure` right, by name or through a role, may act on it —
///   but a shared mailbox (one with `access` entries) also needs `CanManageSharedMailboxSync`,
///   the system operation the seed puts on configuring a shared mailbox's sync.
pub fn may_sync(
    set: &ConfigSet,
    user: &str,
    operations: &BTreeSet<Operation>,
    name: &str,
    mailbox: &MailboxSpec,
) -> Result<SyncGrant, SyncRefusal> {
    if operations.contains(&Operation::CanManageAdministration) {
        return Ok(SyncGrant::Administration);
    }
    if mailbox.owner == user {
        return Ok(SyncGrant::Owner);
    }
    if !allowed(set, user, mailbox, Right::Configure) {
        return Err(SyncRefusal::NoRight {
            user: user.to_owned(),
            mailbox: name.to_owned(),
        });
    }
    let shared = !mailbox.access.is_empty();
    if shared && !operations.contains(&Operation::CanManageSharedMailboxSync) {
        return Err(SyncRefusal::SharedSyncOperation {
            user: user.to_owned(),
            mailbox: name.to_owned(),
        });
    }
    Ok(SyncGrant::Configure)
}

/// The names of the mailboxes `user` may read, in config order.
pub fn readable(set: &ConfigSet, user: &str) -> Vec<String> {
    set.specs::<MailboxSpec>()
        .filter(|(_, m)| allowed(set, user, m, Right::Read))
        .map(|(o, _)| o.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> (tempfile::TempDir, ConfigSet) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("all.yaml"),
            "apiVersion: switchboard/v1\nkind: Role\nmetadata: {name: sales}\nspec: {title: Sales}\n---\n\
             apiVersion: switchboard/v1\nkind: Role\nmetadata: {name: mail-admins}\nspec: {title: Mail admins, operations: [CanManageSharedMailboxSync]}\n---\n\
             apiVersion: switchboard/v1\nkind: User\nmetadata: {name: alice}\nspec: {displayName: A, email: alice@example.com, operations: [CanConnectSharedMailbox, CanManageSharedMailboxSync]}\n---\n\
             apiVersion: switchboard/v1\nkind: User\nmetadata: {name: bob}\nspec: {displayName: B, email: bob@example.com, roles: [sales]}\n---\n\
             apiVersion: switchboard/v1\nkind: User\nmetadata: {name: carol}\nspec: {displayName: C, email: carol@example.com}\n---\n\
             apiVersion: switchboard/v1\nkind: User\nmetadata: {name: dave}\nspec: {displayName: D, email: dave@example.com}\n---\n\
             apiVersion: switchboard/v1\nkind: User\nmetadata: {name: erin}\nspec: {displayName: E, email: erin@example.com, roles: [mail-admins]}\n---\n\
             apiVersion: switchboard/v1\nkind: User\nmetadata: {name: frank}\nspec: {displayName: F, email: frank@example.com, operations: [CanManageAdministration]}\n---\n\
             apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {name: personal}\nspec: {address: dave@example.com, owner: dave, password: {env: X}}\n---\n\
             apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {name: p}\nspec: {type: imap, title: P, domains: [example.com], imap: {host: h}, smtp: {host: h}}\n---\n\
             apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {name: shared}\nspec:\n  address: sales@example.com\n  owner: alice\n  password: {env: X}\n  access:\n    - {role: sales, readEmails: true}\n    - {user: carol, sendEmails: true}\n    - {user: dave, configure: true}\n    - {user: erin, configure: true}\n",
        )
        .expect("write");
        let set = crate::config::load(&[dir.path().to_path_buf()])
            .into_result()
            .expect("valid");
        (dir, set)
    }

    #[test]
    fn owner_roles_and_users_get_exactly_their_rights() {
        // REQ: MB-04
        let (_dir, set) = set();
        let shared = set.get::<MailboxSpec>("shared").expect("mailbox");
        assert!(allowed(&set, "alice", shared, Right::Send), "the owner");
        assert!(
            allowed(&set, "bob", shared, Right::Read),
            "readEmails through a role"
        );
        assert!(!allowed(&set, "bob", shared, Right::Send));
        assert!(allowed(&set, "carol", shared, Right::Send));
        assert!(
            allowed(&set, "carol", shared, Right::Read),
            "a sender sees its mail"
        );
        assert!(
            !allowed(&set, "dave", shared, Right::Read),
            "configure is not read"
        );
        assert_eq!(readable(&set, "dave"), ["personal"]);
        assert_eq!(readable(&set, "bob"), ["shared"]);
        assert!(allowed(&set, "dave", shared, Right::Configure));
        assert!(
            !allowed(&set, "carol", shared, Right::Configure),
            "send is not configure"
        );
    }

    fn sync(set: &ConfigSet, user: &str, name: &str) -> Result<SyncGrant, SyncRefusal> {
        let mailbox = set.get::<MailboxSpec>(name).expect("mailbox");
        may_sync(set, user, &set.operations(user), name, mailbox)
    }

    #[test]
    fn administrators_owners_and_configure_holders_may_sync_a_mailbox() {
        // REQ: EP-09 (changing mailbox settings: CanManageAdministration or `configure`)
        let (_dir, set) = set();
        assert_eq!(sync(&set, "frank", "shared"), Ok(SyncGrant::Administration));
        assert_eq!(
            sync(&set, "frank", "personal"),
            Ok(SyncGrant::Administration)
        );
        assert_eq!(sync(&set, "alice", "shared"), Ok(SyncGrant::Owner));
        assert_eq!(sync(&set, "dave", "personal"), Ok(SyncGrant::Owner));
        // REQ: MB-04 (configuring a shared mailbox's sync is a system operation of its own)
        assert_eq!(
            sync(&set, "erin", "shared"),
            Ok(SyncGrant::Configure),
            "configure plus CanManageSharedMailboxSync through a role"
        );
        assert_eq!(
            sync(&set, "dave", "shared"),
            Err(SyncRefusal::SharedSyncOperation {
                user: "dave".into(),
                mailbox: "shared".into()
            }),
            "configure alone is not enough on a shared mailbox"
        );
    }

    #[test]
    fn readers_senders_and_strangers_may_not_sync_a_mailbox() {
        // REQ: EP-09, MB-04 (read and send rights do not reach the settings)
        let (_dir, set) = set();
        for (user, mailbox) in [
            ("bob", "shared"),
            ("carol", "shared"),
            ("erin", "personal"),
            ("alice", "personal"),
        ] {
            assert_eq!(
                sync(&set, user, mailbox),
                Err(SyncRefusal::NoRight {
                    user: user.into(),
                    mailbox: mailbox.into()
                }),
                "{user} on {mailbox}"
            );
        }
        let message = sync(&set, "bob", "shared")
            .expect_err("refused")
            .to_string();
        assert!(message.contains("CanManageAdministration"), "{message}");
    }
}
