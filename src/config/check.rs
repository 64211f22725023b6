//! Checks that span fields or objects: unique names, references between objects, fields that
//! depend on a provider or an auth method, and the mail domain directory (EP-07).
//!
//! Each check adds positioned diagnostics; none stops the others, so the admin sees every
//! problem in one run. Pure: reads the [`ConfigSet`] only.

use std::collections::HashMap;

use super::diagnostics::{Diagnostic, code};
use super::kinds::*;
use super::yaml::PathSeg;
use super::{ConfigSet, Kind, KindSpec, Object};
use crate::field_path;

/// What a sync object's `account` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SyncAccount {
    /// A GoogleAccount.
    Google,
    /// A DavAccount (CardDAV / CalDAV).
    Dav,
    /// A Mailbox on exchange or microsoft365.
    Mailbox,
}

/// Runs every cross-object check.
///
/// A reference that objects in a file with a YAML syntax error might satisfy (`unparsed`) is
/// not reported: it would be a guess. Every other one is.
pub(crate) fn check(
    set: &ConfigSet,
    broken: &super::loader::Broken,
    unparsed: &super::loader::Unparsed,
) -> Vec<Diagnostic> {
    let mut c = Checker {
        set,
        broken,
        unparsed,
        index: set
            .objects
            .iter()
            .map(|o| ((o.kind(), o.name.as_str()), o))
            .collect(),
        directory: super::directory::MailDirectory::new(set),
        diags: Vec::new(),
    };
    c.unique_names();
    c.settings();
    c.identity();
    c.chat();
    c.mail();
    c.sync();
    c.leads();
    c.diags
}

struct Checker<'a> {
    set: &'a ConfigSet,
    broken: &'a super::loader::Broken,
    unparsed: &'a super::loader::Unparsed,
    /// (kind, name) → object: references are looked up here, not by scanning the set.
    index: HashMap<(Kind, &'a str), &'a Object>,
    directory: super::directory::MailDirectory,
    diags: Vec<Diagnostic>,
}

impl<'a> Checker<'a> {
    fn at(
        &mut self,
        code: &'static str,
        obj: &Object,
        path: Vec<PathSeg>,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let d = obj.origin.diagnostic(code, &obj.id(), &path, message);
        self.diags.push(d);
        self.diags.last_mut().expect("just pushed")
    }

    /// The object of spec type `T` named `name`.
    fn get<T: KindSpec>(&self, name: &str) -> Option<&'a T> {
        self.index
            .get(&(T::KIND, name))
            .and_then(|o| T::from_spec(&o.spec))
    }

    /// Whether a reference to `name` of `kind` should be reported as unresolved: not when
    /// a file that does not parse may define it, nor when the object exists but failed to load.
    fn reportable(&self, kind: Kind, name: &str) -> bool {
        !self.unparsed.may_define(name) && !self.broken.contains(&(kind, name.to_owned()))
    }

    /// A hint for an unresolved reference: the closest name of that kind, or the names there are.
    fn names_hint(&self, kind: Kind, target: &str) -> String {
        let mut names: Vec<&str> = self
            .set
            .objects
            .iter()
            .filter(|o| o.kind() == kind)
            .map(|o| o.name.as_str())
            .chain(
                self.broken
                    .iter()
                    .filter(|(k, _)| *k == kind)
                    .map(|(_, n)| n.as_str()),
            )
            .collect();
        names.sort_unstable();
        names.dedup();
        match super::diagnostics::did_you_mean(target, &names) {
            Some(s) => format!("did you mean `{s}`?"),
            None if names.is_empty() => format!("no {kind} is defined"),
            None => format!("defined {kind}s: {}", names.join(", ")),
        }
    }

    /// Reports `obj`'s reference at `path` unless an object of `T` named `target` exists.
    fn reference<T: KindSpec>(
        &mut self,
        obj: &Object,
        path: Vec<PathSeg>,
        target: &str,
    ) -> Option<&'a T> {
        let found = self.get::<T>(target);
        if found.is_none() && self.reportable(T::KIND, target) {
            let hint = self.names_hint(T::KIND, target);
            self.at(
                code::REFERENCE,
                obj,
                path,
                format!("{} `{target}` does not exist", T::KIND),
            )
            .hint = Some(hint);
        }
        found
    }

    fn unique_names(&mut self) {
        let mut seen: HashMap<(Kind, &str), &Object> = HashMap::new();
        for obj in &self.set.objects {
            if let Some(first) = seen.get(&(obj.kind(), obj.name.as_str())) {
                let first_pos = first
                    .origin
                    .node
                    .locate(&[PathSeg::from("metadata"), PathSeg::from("name")])
                    .pos();
                let hint = format!(
                    "first defined at {}:{}:{}; names are unique per kind",
                    first.origin.file.display(),
                    first_pos.line,
                    first_pos.col,
                );
                self.at(
                    code::DUPLICATE,
                    obj,
                    field_path!["metadata", "name"],
                    format!("duplicate {} name `{}`", obj.kind(), obj.name),
                )
                .hint = Some(hint);
            } else {
                seen.insert((obj.kind(), obj.name.as_str()), obj);
            }
        }
    }

    fn settings(&mut self) {
        let mut count = 0;
        for (obj, spec) in self.set.specs::<SettingsSpec>() {
            count += 1;
            let http = &spec.http;
            for (field, value) in [
                ("headerReadTimeout", &http.header_read_timeout),
                ("bodyReadTimeout", &http.body_read_timeout),
                ("idleTimeout", &http.idle_timeout),
            ] {
                if value.get().is_zero() {
                    self.at(
                        code::INVALID_VALUE,
                        obj,
                        field_path!["spec", "http", field],
                        format!("`{field}` must be longer than zero"),
                    );
                }
            }
            if http.max_connections == 0 {
                self.at(
                    code::INVALID_VALUE,
                    obj,
                    field_path!["spec", "http", "maxConnections"],
                    "`maxConnections` must be at least 1",
                );
            }
            if let Some(idp) = &spec.identity_server {
                self.identity_server(obj, idp);
            }
            if !(1024..=1024 * 1024).contains(&http.max_header_bytes) {
                self.at(
                    code::INVALID_VALUE,
                    obj,
                    field_path!["spec", "http", "maxHeaderBytes"],
                    "`maxHeaderBytes` must be between 1024 and 1048576",
                );
            }
            if obj.name != "default" {
                self.at(
                    code::ENVELOPE,
                    obj,
                    field_path!["metadata", "name"],
                    "Settings must be named `default`",
                )
                .hint = Some("there is one Settings object per installation".into());
            } else if count > 1 {
                // Reported by unique_names.
            }
        }
    }

    /// `Settings.identityServer`: the issuer is reached over HTTPS — plain HTTP only on a
    /// loopback host (a local issuer, the test suite's fake) — and names its client.
    fn identity_server(&mut self, obj: &Object, idp: &IdentityServerSettings) {
        let url = idp.url.url();
        if url.scheme() != "https" && !is_loopback(url) {
            self.at(
                code::INVALID_VALUE,
                obj,
                field_path!["spec", "identityServer", "url"],
                "the identity server's `url` must be https:// (http:// only on a loopback host)",
            )
            .hint = Some("the issuer's keys must not travel in the clear".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            self.at(
                code::INVALID_VALUE,
                obj,
                field_path!["spec", "identityServer", "url"],
                "the identity server's `url` is its issuer: no query or fragment",
            );
        }
        if idp.client_id.trim().is_empty() {
            self.at(
                code::MISSING_FIELD,
                obj,
                field_path!["spec", "identityServer", "clientId"],
                "the identity server's `clientId` must not be empty: tokens' `aud` is checked against it",
            );
        }
    }

    fn identity(&mut self) {
        for (obj, user) in self.set.specs::<UserSpec>() {
            for (i, role) in user.roles.iter().enumerate() {
                self.reference::<RoleSpec>(obj, field_path!["spec", "roles", i], role);
            }
        }
    }

    fn chat(&mut self) {
        for (obj, queue) in self.set.specs::<ChatQueueSpec>() {
            for (i, op) in queue.operators.iter().enumerate() {
                match op {
                    OperatorRef::User(u) => {
                        self.reference::<UserSpec>(
                            obj,
                            field_path!["spec", "operators", i, "user"],
                            u,
                        );
                    }
                    OperatorRef::Role(r) => {
                        self.reference::<RoleSpec>(
                            obj,
                            field_path!["spec", "operators", i, "role"],
                            r,
                        );
                    }
                }
            }
        }
        for (obj, ch) in self.set.specs::<ChatChannelSpec>() {
            self.reference::<ChatQueueSpec>(obj, field_path!["spec", "queue"], &ch.queue);
            self.channel_fields(obj, ch);
        }
        for (obj, action) in self.set.specs::<ChatActionSpec>() {
            self.reference::<ChatQueueSpec>(obj, field_path!["spec", "queue"], &action.queue);
            match (&action.builtin, &action.webhook) {
                (Some(_), None) | (None, Some(_)) => {}
                _ => {
                    self.at(
                        code::CONFLICT,
                        obj,
                        field_path!["spec"],
                        "a ChatAction has exactly one of `builtin` and `webhook`",
                    )
                    .hint = Some("use `builtin: createCase` or `webhook: {url, secret}`".into());
                }
            }
        }
        for (obj, reply) in self.set.specs::<QuickReplySpec>() {
            for (i, q) in reply.queues.iter().flatten().enumerate() {
                self.reference::<ChatQueueSpec>(obj, field_path!["spec", "queues", i], q);
            }
        }
    }

    /// Which provider-specific fields a channel must and may have.
    fn channel_fields(&mut self, obj: &Object, ch: &ChatChannelSpec) {
        let present: [(&str, bool); 14] = [
            ("token", ch.token.is_some()),
            ("pageId", ch.page_id.is_some()),
            ("pageAccessToken", ch.page_access_token.is_some()),
            ("appSecret", ch.app_secret.is_some()),
            ("verifyToken", ch.verify_token.is_some()),
            ("handover", ch.handover.is_some()),
            ("phoneNumber", ch.phone_number.is_some()),
            (
                "verificationPhoneNumber",
                ch.verification_phone_number.is_some(),
            ),
            ("accountSid", ch.account_sid.is_some()),
            ("authToken", ch.auth_token.is_some()),
            ("sandbox", ch.sandbox.is_some()),
            ("inboundToken", ch.inbound_token.is_some()),
            ("callbackUrl", ch.callback_url.is_some()),
            ("callbackSecret", ch.callback_secret.is_some()),
        ];
        let (required, optional): (&[&str], &[&str]) = match ch.provider {
            ChannelProvider::Telegram => (&["token"], &["apiBaseUrl"]),
            ChannelProvider::FacebookMessenger => (
                &["pageId", "pageAccessToken", "appSecret", "verifyToken"],
                &["handover", "apiBaseUrl"],
            ),
            ChannelProvider::Whatsapp => (
                &[
                    "phoneNumber",
                    "verificationPhoneNumber",
                    "accountSid",
                    "authToken",
                ],
                &["sandbox", "apiBaseUrl"],
            ),
            ChannelProvider::Api => (&["inboundToken"], &["callbackUrl", "callbackSecret"]),
        };
        let provider = ch.provider.as_str();
        for (field, is_set) in present
            .iter()
            .chain([("apiBaseUrl", ch.api_base_url.is_some())].iter())
        {
            if required.contains(field) && !is_set {
                self.at(
                    code::MISSING_FIELD,
                    obj,
                    field_path!["spec", *field],
                    format!("missing required field `{field}` for provider {provider}"),
                )
                .hint = Some(format!(
                    "a {provider} channel needs {}",
                    required.join(", ")
                ));
            } else if *is_set && !required.contains(field) && !optional.contains(field) {
                self.at(
                    code::UNKNOWN_FIELD,
                    obj,
                    field_path!["spec", *field],
                    format!("field `{field}` does not apply to provider {provider}"),
                )
                .hint = Some(format!(
                    "a {provider} channel takes {}",
                    required
                        .iter()
                        .chain(optional)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        if ch.callback_url.is_some() != ch.callback_secret.is_some() {
            let present = if ch.callback_url.is_some() {
                "callbackUrl"
            } else {
                "callbackSecret"
            };
            self.at(
                code::CONFLICT,
                obj,
                field_path!["spec", present],
                "`callbackUrl` and `callbackSecret` go together",
            )
            .hint = Some(
                "operator messages POSTed to callbackUrl are signed with callbackSecret".into(),
            );
        }
        if let Some(phone) = &ch.phone_number
            && !is_e164(phone)
        {
            self.at(
                code::INVALID_VALUE,
                obj,
                field_path!["spec", "phoneNumber"],
                format!("invalid phone number `{phone}`"),
            )
            .hint = Some("write it in E.164 form, like +14155238886".into());
        }
        if let Some(phone) = &ch.verification_phone_number
            && !is_e164(phone)
        {
            self.at(
                code::INVALID_VALUE,
                obj,
                field_path!["spec", "verificationPhoneNumber"],
                format!("invalid phone number `{phone}`"),
            )
            .hint = Some("write it in E.164 form, like +14155238886".into());
        }
    }

    fn mail(&mut self) {
        for (obj, p) in self.set.specs::<MailProviderSpec>() {
            let t = p.provider_type.as_str();
            if matches!(
                p.provider_type,
                MailProviderType::Imap | MailProviderType::Gmail
            ) {
                if p.imap.is_none() && p.load {
                    self.at(
                        code::MISSING_FIELD,
                        obj,
                        field_path!["spec", "imap"],
                        format!("missing required field `imap` for type {t}"),
                    )
                    .hint =
                        Some("give `imap: {host, port, security}`, or set `load: false`".into());
                }
                if p.smtp.is_none() && p.send {
                    self.at(
                        code::MISSING_FIELD,
                        obj,
                        field_path!["spec", "smtp"],
                        format!("missing required field `smtp` for type {t}"),
                    )
                    .hint =
                        Some("give `smtp: {host, port, security}`, or set `send: false`".into());
                }
            }
            if p.provider_type == MailProviderType::Exchange && p.exchange.is_none() {
                self.at(
                    code::MISSING_FIELD,
                    obj,
                    field_path!["spec", "exchange"],
                    "missing required field `exchange` for type exchange",
                )
                .hint = Some(
                    "give `exchange: {serviceUrl: https://mail.example.com/EWS/Exchange.asmx}`"
                        .into(),
                );
            }
            if !p.load && !p.send {
                self.at(
                    code::CONFLICT,
                    obj,
                    field_path!["spec", "load"],
                    "a provider must load or send mail (or both)",
                )
                .hint = Some("set `load: true` or `send: true`".into());
            }
            if p.auth == AuthMethod::Oauth2 && p.oauth2.is_none() {
                self.at(code::MISSING_FIELD, obj, field_path!["spec", "auth"], "`auth: oauth2` needs `oauth2: {clientId, clientSecret, authUrl, tokenUrl, scopes}`");
            }
            for (i, d) in p.domains.iter().enumerate() {
                if !super::types::is_hostname(d) || !d.contains('.') {
                    self.at(
                        code::INVALID_VALUE,
                        obj,
                        field_path!["spec", "domains", i],
                        format!("invalid domain `{d}`"),
                    );
                }
            }
        }

        // A domain claimed by two providers detects neither reliably.
        let mut claimed: HashMap<String, &str> = HashMap::new();
        for (obj, p) in self.set.specs::<MailProviderSpec>() {
            for (i, d) in p.domains.iter().enumerate() {
                match claimed.get(&d.to_ascii_lowercase()) {
                    Some(first) if *first != obj.name => {
                        let first = first.to_string();
                        self.at(
                            code::CONFLICT,
                            obj,
                            field_path!["spec", "domains", i],
                            format!("domain `{d}` is also claimed by MailProvider `{first}`"),
                        )
                        .hint = Some(
                            "a domain detects one provider; remove it from one of them".into(),
                        );
                    }
                    _ => {
                        claimed.insert(d.to_ascii_lowercase(), &obj.name);
                    }
                }
            }
        }

        for (obj, mb) in self.set.specs::<MailboxSpec>() {
            self.reference::<UserSpec>(obj, field_path!["spec", "owner"], &mb.owner);
            let domain = mb.address.domain();
            let provider = match &mb.provider {
                Some(p) => {
                    let found = self.get::<MailProviderSpec>(p);
                    if found.is_none() && self.reportable(Kind::MailProvider, p) {
                        let users: Vec<String> = self
                            .set
                            .specs::<MailboxSpec>()
                            .filter(|(_, m)| m.provider.as_deref() == Some(p))
                            .map(|(o, _)| format!("Mailbox/{}", o.name))
                            .collect();
                        let hint = format!(
                            "{}; a provider cannot be removed while mailboxes use it: {}",
                            self.names_hint(Kind::MailProvider, p),
                            users.join(", ")
                        );
                        self.at(
                            code::REFERENCE,
                            obj,
                            field_path!["spec", "provider"],
                            format!("MailProvider `{p}` does not exist"),
                        )
                        .hint = Some(hint);
                    }
                    // EP-07: two mailboxes of one domain naming different providers make the
                    // domain's provider ambiguous for a third.
                    if let Some(other) = self.directory.provider_for_domain(&domain)
                        && other != p
                        && !claimed.contains_key(&domain)
                    {
                        let other = other.to_owned();
                        self.at(
                            code::CONFLICT,
                            obj,
                            field_path!["spec", "provider"],
                            format!(
                                "another mailbox of `{domain}` uses MailProvider `{other}`; mailboxes of one domain share a provider"
                            ),
                        )
                        .hint = Some(format!(
                            "use `provider: {other}`, or list `{domain}` in a provider's `domains`"
                        ));
                    }
                    found
                }
                None => match self.directory.provider_for_domain(&domain) {
                    Some(n) => self.get::<MailProviderSpec>(n),
                    None => {
                        if !self.unparsed.mentions(&domain) {
                            self.at(
                                code::REFERENCE,
                                obj,
                                field_path!["spec", "address"],
                                format!("no MailProvider serves the domain `{domain}`"),
                            )
                            .hint = Some(format!(
                                "add `{domain}` to a MailProvider's `domains`, or name one with `provider:`"
                            ));
                        }
                        None
                    }
                },
            };
            if let Some(p) = provider {
                self.mailbox_credentials(obj, mb, p);
            }
            for (i, a) in mb.access.iter().enumerate() {
                match (&a.user, &a.role) {
                    (Some(u), None) => {
                        self.reference::<UserSpec>(
                            obj,
                            field_path!["spec", "access", i, "user"],
                            u,
                        );
                    }
                    (None, Some(r)) => {
                        self.reference::<RoleSpec>(
                            obj,
                            field_path!["spec", "access", i, "role"],
                            r,
                        );
                    }
                    _ => {
                        self.at(
                            code::CONFLICT,
                            obj,
                            field_path!["spec", "access", i],
                            "an access entry names exactly one of `user` and `role`",
                        );
                    }
                }
            }
        }
        for (obj, mb) in self.set.specs::<MailboxSpec>() {
            self.shared_mailbox_owner(obj, mb);
        }
        // MB-03: at most one default sender per owner.
        let mut defaults: HashMap<&str, &str> = HashMap::new();
        for (obj, mb) in self.set.specs::<MailboxSpec>() {
            if mb.send.default_sender {
                if let Some(first) = defaults.get(mb.owner.as_str()) {
                    self.at(
                        code::CONFLICT,
                        obj,
                        field_path!["spec", "send", "defaultSender"],
                        format!(
                            "user `{}` already has a default sender: Mailbox/{first}",
                            mb.owner
                        ),
                    );
                } else {
                    defaults.insert(&mb.owner, &obj.name);
                }
                if mb.send.enabled == Some(false) {
                    self.at(
                        code::CONFLICT,
                        obj,
                        field_path!["spec", "send", "defaultSender"],
                        "a mailbox with `send.enabled: false` cannot be the default sender",
                    );
                }
            }
        }
    }

    /// MB-04: a mailbox with `access` entries is a shared mailbox, and setting one up takes
    /// the system operations `CanConnectSharedMailbox` and `CanManageSharedMailboxSync`. In a
    /// declarative config the one who sets it up is its `owner`, so the owner must hold both,
    /// directly or through a role. An owner that does not exist is reported as a reference.
    fn shared_mailbox_owner(&mut self, obj: &Object, mb: &MailboxSpec) {
        if mb.access.is_empty() {
            return;
        }
        let Some(owner) = self.get::<UserSpec>(&mb.owner) else {
            return;
        };
        let mut held: Vec<Operation> = owner.operations.clone();
        for role in &owner.roles {
            if let Some(role) = self.get::<RoleSpec>(role) {
                held.extend(role.operations.iter().copied());
            }
        }
        let missing: Vec<&str> = SHARED_MAILBOX_OPERATIONS
            .iter()
            .filter(|op| !held.contains(op))
            .map(|op| op.as_str())
            .collect();
        if missing.is_empty() {
            return;
        }
        let (noun, list) = match missing.as_slice() {
            [one] => ("operation", (*one).to_owned()),
            more => ("operations", more.join(" and ")),
        };
        let roles = if owner.roles.is_empty() {
            String::new()
        } else {
            format!(" or to one of its roles ({})", owner.roles.join(", "))
        };
        self.at(
            code::MISSING_OPERATION,
            obj,
            field_path!["spec", "access"],
            format!(
                "shared mailbox `{}` is owned by user `{}`, who lacks the system {noun} {list}",
                obj.name, mb.owner
            ),
        )
        .hint = Some(format!(
            "a mailbox with `access` entries is shared, and setting one up needs CanConnectSharedMailbox and CanManageSharedMailboxSync (MB-04): add {list} to User `{}`'s `operations`{roles}, or remove `access`",
            mb.owner
        ));
    }

    fn mailbox_credentials(&mut self, obj: &Object, mb: &MailboxSpec, p: &MailProviderSpec) {
        if p.login_format == LoginFormat::Manual && mb.login.is_none() {
            self.at(
                code::MISSING_FIELD,
                obj,
                field_path!["spec", "login"],
                "missing required field `login`",
            )
            .hint = Some("the mailbox's provider has `loginFormat: manual`".into());
        }
        match p.auth {
            AuthMethod::Basic => {
                if mb.password.is_none() {
                    self.at(code::MISSING_FIELD, obj, field_path!["spec", "password"], "missing required field `password`")
                        .hint = Some("the provider uses basic auth; give `password: {env|file|credential: ...}` (an app password where the provider requires one)".into());
                }
                if mb.oauth2_refresh_token.is_some() {
                    self.at(
                        code::CONFLICT,
                        obj,
                        field_path!["spec", "oauth2RefreshToken"],
                        "the provider uses basic auth, not OAuth 2.0",
                    );
                }
            }
            AuthMethod::Oauth2 => {
                if mb.password.is_some() {
                    self.at(code::CONFLICT, obj, field_path!["spec", "password"], "the provider uses OAuth 2.0, not a password")
                        .hint = Some("give `oauth2RefreshToken`, or complete the consent flow at /oauth/{google|microsoft}/callback".into());
                }
            }
        }
        // Only an explicit `enabled: true` conflicts: absent, it is the provider's value.
        if mb.load.enabled == Some(true) && !p.load {
            self.at(
                code::CONFLICT,
                obj,
                field_path!["spec", "load", "enabled"],
                "the provider does not load mail",
            )
            .hint = Some(
                "remove `load.enabled` (or set it to false), or use a provider with `load: true`"
                    .into(),
            );
        }
        if mb.send.enabled == Some(true) && !p.send {
            self.at(
                code::CONFLICT,
                obj,
                field_path!["spec", "send", "enabled"],
                "the provider does not send mail",
            )
            .hint = Some(
                "remove `send.enabled` (or set it to false), or use a provider with `send: true`"
                    .into(),
            );
        }
    }

    fn sync(&mut self) {
        // A GoogleAccount's grant is the Google app's (`Settings.google`): without its client
        // id and secret neither the consent flow nor a refresh can run.
        let google_app = self
            .set
            .specs::<SettingsSpec>()
            .find_map(|(_, s)| s.google.as_ref())
            .is_some_and(|g| g.client_id.is_some() && g.client_secret.is_some());
        let settings_may_exist = self.reportable(Kind::Settings, "default");
        for (obj, g) in self.set.specs::<GoogleAccountSpec>() {
            self.reference::<UserSpec>(obj, field_path!["spec", "user"], &g.user);
            if !google_app && settings_may_exist {
                self.at(
                    code::MISSING_FIELD,
                    obj,
                    field_path!["spec"],
                    "a GoogleAccount needs the Google app: Settings.google.clientId and Settings.google.clientSecret are not set",
                )
                .hint = Some(
                    "set `google: {clientId: ..., clientSecret: {env: ...}}` in Settings (a Google Cloud OAuth client of type Web application whose redirect URI is {siteUrl}/oauth/google/callback)"
                        .into(),
                );
            }
        }
        for (obj, d) in self.set.specs::<DavAccountSpec>() {
            self.reference::<UserSpec>(obj, field_path!["spec", "user"], &d.user);
        }
        for (obj, cs) in self.set.specs::<ContactSyncSpec>() {
            let account = self.account(obj, &cs.account);
            if matches!(account, Some(SyncAccount::Mailbox | SyncAccount::Dav))
                && cs.google.is_some()
            {
                self.at(
                    code::CONFLICT,
                    obj,
                    field_path!["spec", "google"],
                    "`google` settings apply to a GoogleAccount only",
                );
            }
            if account == Some(SyncAccount::Google) && cs.google.is_none() {
                self.at(code::MISSING_FIELD, obj, field_path!["spec", "google"], "missing required field `google` for a Google account")
                    .hint = Some("give `google: {tag: ..., group: ...}`: only contacts with that personal tag are synced (CS-03)".into());
            }
        }
        for (obj, cs) in self.set.specs::<CalendarSyncSpec>() {
            self.account(obj, &cs.account);
        }
    }

    /// Resolves a sync `account`: a GoogleAccount, a DavAccount or a Mailbox on
    /// exchange/microsoft365; `None` (reported) otherwise.
    fn account(&mut self, obj: &Object, name: &str) -> Option<SyncAccount> {
        if self.get::<GoogleAccountSpec>(name).is_some() {
            return Some(SyncAccount::Google);
        }
        if self.get::<DavAccountSpec>(name).is_some() {
            return Some(SyncAccount::Dav);
        }
        if let Some(mb) = self.get::<MailboxSpec>(name) {
            let provider = self
                .directory
                .provider_name(mb)
                .and_then(|p| self.get::<MailProviderSpec>(p));
            return match provider.map(|p| p.provider_type) {
                Some(MailProviderType::Exchange | MailProviderType::Microsoft365) => {
                    Some(SyncAccount::Mailbox)
                }
                Some(t) => {
                    self.at(code::REFERENCE, obj, field_path!["spec", "account"], format!("Mailbox `{name}` is on a provider of type {}", t.as_str()))
                        .hint = Some("contact and calendar sync needs a Mailbox on exchange or microsoft365, a GoogleAccount or a DavAccount".into());
                    None
                }
                None => None, // the mailbox's own check reports its provider
            };
        }
        if !self.reportable(Kind::Mailbox, name)
            || !self.reportable(Kind::GoogleAccount, name)
            || !self.reportable(Kind::DavAccount, name)
        {
            return None;
        }
        self.at(
            code::REFERENCE,
            obj,
            field_path!["spec", "account"],
            format!("account `{name}` does not exist"),
        )
        .hint = Some(
            "name a Mailbox on exchange/microsoft365, a GoogleAccount or a DavAccount; when its account was removed, remove the sync too (the records it imported are kept)".into(),
        );
        None
    }

    fn leads(&mut self) {
        for (obj, a) in self.set.specs::<LinkedInAccountSpec>() {
            self.reference::<UserSpec>(obj, field_path!["spec", "user"], &a.user);
        }
        for (obj, li) in self.set.specs::<LeadIntegrationSpec>() {
            if let Some(role) = &li.notify_role {
                self.reference::<RoleSpec>(obj, field_path!["spec", "notifyRole"], role);
            }
            for (i, account) in li.accounts.iter().enumerate() {
                self.reference::<LinkedInAccountSpec>(
                    obj,
                    field_path!["spec", "accounts", i],
                    account,
                );
            }
            self.mapping(
                obj,
                &li.default_mapping,
                field_path!["spec", "defaultMapping"],
            );
            let mut ids: HashMap<&str, usize> = HashMap::new();
            for (i, form) in li.forms.iter().enumerate() {
                if let Some(first) = ids.insert(&form.id, i) {
                    self.at(
                        code::DUPLICATE,
                        obj,
                        field_path!["spec", "forms", i, "id"],
                        format!(
                            "form `{}` is listed twice (first at forms[{first}])",
                            form.id
                        ),
                    );
                }
                if let Some(m) = &form.custom_mapping {
                    self.mapping(obj, m, field_path!["spec", "forms", i, "customMapping"]);
                }
            }
        }
    }

    /// LI-03/LI-04: each column has exactly one source. A mapping without
    /// `macro: not_mapped_fields` is valid: the not-mapped values go to `Notes`.
    fn mapping(&mut self, obj: &Object, mapping: &[ColumnMapping], path: Vec<PathSeg>) {
        for (i, col) in mapping.iter().enumerate() {
            let sources = [
                col.field.is_some(),
                col.constant.is_some(),
                col.macro_.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            let mut p = path.clone();
            p.push(PathSeg::Index(i));
            if sources != 1 {
                self.at(
                    code::CONFLICT,
                    obj,
                    p,
                    format!(
                        "column `{}` needs exactly one of `field`, `constant`, `macro`",
                        col.column
                    ),
                );
                continue;
            }
            // LI-03: the not-mapped text needs an unlimited string column; a constant must be
            // of its column's type.
            if col.macro_.is_some()
                && let Some(kind) = lead_columns::column_type(&col.column)
                && !lead_columns::takes_unlimited_text(&col.column)
            {
                p.push(PathSeg::Key("macro".into()));
                self.at(
                    code::INVALID_VALUE,
                    obj,
                    p,
                    format!(
                        "`macro: not_mapped_fields` needs a text column of unlimited length; `{}` is {}",
                        col.column,
                        describe(kind)
                    ),
                );
            } else if let Some(constant) = &col.constant
                && let Err(why) = lead_columns::convert(&col.column, constant)
            {
                p.push(PathSeg::Key("constant".into()));
                self.at(code::INVALID_VALUE, obj, p, why);
            }
        }
    }
}

/// A lead column's type, as a diagnostic names it.
fn describe(kind: lead_columns::ColumnType) -> String {
    use lead_columns::ColumnType;
    match kind {
        ColumnType::String(Some(n)) => format!("text of at most {n} characters"),
        ColumnType::String(None) => "text".to_owned(),
        ColumnType::Decimal => "a decimal number".to_owned(),
        ColumnType::Boolean => "true or false".to_owned(),
        ColumnType::DateTime => "a date and time".to_owned(),
        ColumnType::Lookup => "a lookup".to_owned(),
    }
}

/// What the owner of a shared mailbox must hold (MB-04), in the order diagnostics name them.
const SHARED_MAILBOX_OPERATIONS: [Operation; 2] = [
    Operation::CanConnectSharedMailbox,
    Operation::CanManageSharedMailboxSync,
];

fn is_e164(phone: &str) -> bool {
    let digits = phone.strip_prefix('+').unwrap_or("");
    (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// A URL whose host is a loopback address or `localhost`.
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        None => false,
    }
}
