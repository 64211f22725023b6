//! Who may read and send with which mailbox (MB-04).
//!
//! The owner may do everything with their mailbox. Other users get rights through the
//! mailbox's `access` entries, given to them by name or to one of their roles: `readEmails`
//! (see its letters), `sendEmails` (send as it — and so see its mail too, as the seed says a
//! sender "sees its mail in the panel"). Administrators get no implicit right to read others'
//! mail. Pure: reads the config only.

use crate::config::ConfigSet;
use crate::config::kinds::{MailboxAccess, MailboxSpec, UserSpec};

/// A right on a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    /// Read its letters.
    Read,
    /// Send as it.
    Send,
}

fn grants(entry: &MailboxAccess, right: Right) -> bool {
    match right {
        Right::Read => entry.read_emails || entry.send_emails,
        Right::Send => entry.send_emails,
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
             apiVersion: switchboard/v1\nkind: User\nmetadata: {name: alice}\nspec: {displayName: A, email: alice@example.com}\n---\n\
             apiVersion: switchboard/v1\nkind: User\nmetadata: {name: bob}\nspec: {displayName: B, email: bob@example.com, roles: [sales]}\n---\n\
             apiVersion: switchboard/v1\nkind: User\nmetadata: {name: carol}\nspec: {displayName: C, email: carol@example.com}\n---\n\
             apiVersion: switchboard/v1\nkind: User\nmetadata: {name: dave}\nspec: {displayName: D, email: dave@example.com}\n---\n\
             apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {name: p}\nspec: {type: imap, title: P, domains: [example.com], imap: {host: h}, smtp: {host: h}}\n---\n\
             apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {name: shared}\nspec:\n  address: sales@example.com\n  owner: alice\n  password: {env: X}\n  access:\n    - {role: sales, readEmails: true}\n    - {user: carol, sendEmails: true}\n    - {user: dave, configure: true}\n",
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
        assert_eq!(readable(&set, "dave"), Vec::<String>::new());
        assert_eq!(readable(&set, "bob"), ["shared"]);
    }
}
