//! The mail domain directory (EP-07): which MailProvider serves a mailbox.
//!
//! A mailbox names its provider, or gets the one whose `domains` list its address's domain;
//! a mailbox that names its provider explicitly adds its domain to the directory, so other
//! mailboxes of that domain find the same provider. The checks and the mail connector both
//! resolve providers here, so validation and runtime can never disagree.

use std::collections::HashMap;

use super::ConfigSet;
use super::kinds::{MailProviderSpec, MailboxSpec};

/// Domain → provider name.
#[derive(Debug, Clone, Default)]
pub struct MailDirectory {
    by_domain: HashMap<String, String>,
}

impl MailDirectory {
    /// Builds the directory: providers' own domains first (the first provider listing a domain
    /// wins; `check` reports the clash), then the domains of mailboxes with an explicit provider.
    pub fn new(set: &ConfigSet) -> MailDirectory {
        let mut by_domain = HashMap::new();
        for (obj, p) in set.specs::<MailProviderSpec>() {
            for d in &p.domains {
                by_domain
                    .entry(d.to_ascii_lowercase())
                    .or_insert_with(|| obj.name.clone());
            }
        }
        for (_, m) in set.specs::<MailboxSpec>() {
            if let Some(p) = &m.provider {
                by_domain
                    .entry(m.address.domain())
                    .or_insert_with(|| p.clone());
            }
        }
        MailDirectory { by_domain }
    }

    /// The provider serving `domain`, if any.
    pub fn provider_for_domain(&self, domain: &str) -> Option<&str> {
        self.by_domain
            .get(&domain.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The name of the provider a mailbox uses: its own `provider`, or the directory's.
    pub fn provider_name<'a>(&'a self, mailbox: &'a MailboxSpec) -> Option<&'a str> {
        mailbox
            .provider
            .as_deref()
            .or_else(|| self.provider_for_domain(&mailbox.address.domain()))
    }
}

impl ConfigSet {
    /// The provider a mailbox uses, resolved as `validate` does.
    pub fn mail_provider_of(&self, mailbox: &MailboxSpec) -> Option<(&str, &MailProviderSpec)> {
        let directory = MailDirectory::new(self);
        let name = directory.provider_name(mailbox)?;
        self.specs::<MailProviderSpec>()
            .find(|(o, _)| o.name == name)
            .map(|(o, p)| (o.name.as_str(), p))
    }
}
