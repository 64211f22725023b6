//! Who is "the company" for a sync: an address is internal when it is a `User`'s, or in the
//! mail domain of a `User`'s address. Used for BX-03's `invitations: external` and for
//! CS-01's export categories (an employee is a contact with an internal address).

use crate::config::ConfigSet;
use crate::config::kinds::UserSpec;

/// The company's addresses and mail domains, from the running config's `User`s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Company {
    addresses: Vec<String>,
    domains: Vec<String>,
}

impl Company {
    /// The company of `set`.
    pub fn of(set: &ConfigSet) -> Company {
        let addresses: Vec<String> = set
            .specs::<UserSpec>()
            .map(|(_, u)| u.email.to_string().to_lowercase())
            .collect();
        let mut domains: Vec<String> = addresses
            .iter()
            .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d.to_owned()))
            .collect();
        domains.sort();
        domains.dedup();
        Company { addresses, domains }
    }

    /// Whether `address` (lower-cased) is the company's.
    pub fn is_internal(&self, address: &str) -> bool {
        self.addresses.iter().any(|a| a == address)
            || address
                .rsplit_once('@')
                .is_some_and(|(_, d)| self.domains.iter().any(|c| c == d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_address_and_its_domain_are_internal() {
        let c = Company {
            addresses: vec!["ann@corp.example".into()],
            domains: vec!["corp.example".into()],
        };
        assert!(c.is_internal("ann@corp.example"));
        assert!(c.is_internal("bob@corp.example"));
        assert!(!c.is_internal("eve@customer.example"));
    }
}
