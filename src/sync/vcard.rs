//! vCard 3.0 / 4.0 (RFC 2426 / RFC 6350) to and from the record store's contact fields.
//!
//! Hand-written rather than calcard: the sync needs line unfolding, the handful of properties
//! Switchboard models (FN, N, EMAIL, TEL, ORG, TITLE, CATEGORIES, UID, REV) and — the point —
//! *patching* a card: every line it does not model (photos, addresses, `X-` properties,
//! parameters such as `TYPE=work` on an address it keeps) goes back to the server byte for
//! byte. A full object model would re-serialise those lines; this keeps them as read.
//!
//! Reading: [`parse`] unfolds the card and reads the modelled properties into [`CardFields`]
//! (phones normalised with the store's normaliser, addresses lower-cased; values it cannot
//! normalise are left out of the fields but stay in the card). Writing: [`patch`] takes the
//! card as last read (or none, for a new item) and the contact's fields and returns the card
//! to `PUT`.

use crate::store::records::{normalize_email, normalize_phone};

/// The contact fields a card carries, in the store's forms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardFields {
    /// `UID`.
    pub uid: Option<String>,
    /// `FN`, else the name put together from `N`.
    pub name: Option<String>,
    /// `EMAIL`s, normalised, in card order, no duplicates.
    pub emails: Vec<String>,
    /// `TEL`s, normalised, in card order, no duplicates.
    pub phones: Vec<String>,
    /// The first component of `ORG` (the company).
    pub company: Option<String>,
    /// `TITLE`.
    pub job_title: Option<String>,
    /// `CATEGORIES`, in card order, no duplicates.
    pub tags: Vec<String>,
    /// `REV`, as written.
    pub rev: Option<String>,
}

/// One logical (unfolded) content line.
#[derive(Debug, Clone)]
struct Line {
    /// As read, unfolded (kept verbatim when the property is not touched).
    raw: String,
    /// The property name, upper-cased, without a group (`item1.EMAIL` → `EMAIL`).
    name: String,
    /// The value (after the first `:` outside quoted parameters), still escaped.
    value: String,
}

/// Splits `text` into logical lines: CRLF or LF, a line starting with a space or a tab
/// continues the previous one (the one folding character dropped).
fn unfold(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for physical in text.split('\n') {
        let physical = physical.strip_suffix('\r').unwrap_or(physical);
        if let Some(rest) = physical
            .strip_prefix(' ')
            .or_else(|| physical.strip_prefix('\t'))
            && let Some(last) = lines.last_mut()
        {
            last.push_str(rest);
            continue;
        }
        if !physical.is_empty() {
            lines.push(physical.to_owned());
        }
    }
    lines
}

fn parse_line(raw: String) -> Line {
    let mut in_quotes = false;
    let mut colon = None;
    for (i, ch) in raw.char_indices() {
        match ch {
            '"' => in_quotes = !in_quotes,
            ':' if !in_quotes => {
                colon = Some(i);
                break;
            }
            _ => {}
        }
    }
    let (head, value) = match colon {
        Some(i) => (&raw[..i], raw[i + 1..].to_owned()),
        None => (raw.as_str(), String::new()),
    };
    let name = head.split(';').next().unwrap_or_default();
    let name = name.rsplit('.').next().unwrap_or(name).to_ascii_uppercase();
    Line {
        name,
        value,
        raw: raw.clone(),
    }
}

/// Splits an escaped value at unescaped `sep`, unescaping each part (`\n`, `\,`, `\;`, `\\`).
fn split_unescape(value: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = value.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => match chars.next() {
                Some('n' | 'N') => parts.last_mut().expect("one part").push('\n'),
                Some(other) => parts.last_mut().expect("one part").push(other),
                None => {}
            },
            c if c == sep => parts.push(String::new()),
            c => parts.last_mut().expect("one part").push(c),
        }
    }
    parts
}

fn unescape(value: &str) -> String {
    split_unescape(value, '\u{0}').concat()
}

/// Escapes a text value (or one component of a structured one).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            ',' => out.push_str("\\,"),
            ';' => out.push_str("\\;"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

fn non_empty(text: String) -> Option<String> {
    let text = text.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

fn lines_of(text: &str) -> Vec<Line> {
    unfold(text).into_iter().map(parse_line).collect()
}

/// Reads the modelled properties of a card.
pub fn parse(text: &str) -> CardFields {
    let mut f = CardFields::default();
    let mut n_name = None;
    for line in lines_of(text) {
        match line.name.as_str() {
            "UID" => f.uid = non_empty(unescape(&line.value)),
            "FN" => f.name = non_empty(unescape(&line.value)),
            "N" => {
                // family;given;additional;prefix;suffix → "prefix given additional family suffix"
                let p = split_unescape(&line.value, ';');
                let get = |i: usize| p.get(i).map(|s| s.trim()).unwrap_or_default();
                let name = [get(3), get(1), get(2), get(0), get(4)]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                n_name = non_empty(name);
            }
            "EMAIL" => {
                if let Some(e) = normalize_email(&unescape(&line.value))
                    && !f.emails.contains(&e)
                {
                    f.emails.push(e);
                }
            }
            "TEL" => {
                if let Some(p) = normalize_phone(&unescape(&line.value))
                    && !f.phones.contains(&p)
                {
                    f.phones.push(p);
                }
            }
            "ORG" => {
                f.company = split_unescape(&line.value, ';')
                    .into_iter()
                    .next()
                    .and_then(non_empty);
            }
            "TITLE" => f.job_title = non_empty(unescape(&line.value)),
            "CATEGORIES" => {
                for tag in split_unescape(&line.value, ',') {
                    if let Some(tag) = non_empty(tag)
                        && !f.tags.contains(&tag)
                    {
                        f.tags.push(tag);
                    }
                }
            }
            "REV" => f.rev = non_empty(line.value.clone()),
            _ => {}
        }
    }
    if f.name.is_none() {
        f.name = n_name;
    }
    f
}

/// Whether two cards hold the same logical lines (line endings and folding aside: a card read
/// through XML has its CRLFs turned into LFs).
pub fn same(a: &str, b: &str) -> bool {
    unfold(a) == unfold(b)
}

/// Folds a logical line at 75 octets (never inside a UTF-8 character), CRLF-terminated.
fn fold(line: &str, out: &mut String) {
    let mut width = 0;
    for ch in line.chars() {
        let len = ch.len_utf8();
        if width + len > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(ch);
        width += len;
    }
    out.push_str("\r\n");
}

/// `N` from a display name: the last word as the family name, the rest as given names.
fn n_from_name(name: &str) -> String {
    let words: Vec<&str> = name.split_whitespace().collect();
    match words.split_last() {
        Some((family, given)) if !given.is_empty() => {
            format!("{};{};;;", escape(family), escape(&given.join(" ")))
        }
        Some((only, _)) => format!("{};;;;", escape(only)),
        None => ";;;;".to_owned(),
    }
}

/// The card to write for `fields`: `current` (the card as last read) with only the modelled
/// properties changed — lines of addresses and phones still present are kept as read (with
/// their parameters), removed ones dropped, new ones added; `FN`/`N`, `ORG`, `TITLE` and
/// `CATEGORIES` rewritten only when their value changed — and every other line untouched.
/// Without `current`, a new vCard 3.0 with `uid`. `fields.uid` is ignored: a card's UID never
/// changes.
pub fn patch(current: Option<&str>, fields: &CardFields, uid: &str) -> String {
    let base = current.map(lines_of).unwrap_or_else(|| {
        [
            "BEGIN:VCARD".to_owned(),
            "VERSION:3.0".to_owned(),
            "PRODID:-//Switchboard//CardDAV sync//EN".to_owned(),
            format!("UID:{}", escape(uid)),
            "END:VCARD".to_owned(),
        ]
        .into_iter()
        .map(parse_line)
        .collect()
    });
    let old = current.map(parse).unwrap_or_default();
    let v4 = base
        .iter()
        .any(|l| l.name == "VERSION" && l.value.trim() == "4.0");
    let mut out_lines: Vec<String> = Vec::new();
    let mut seen_emails = Vec::new();
    let mut seen_phones = Vec::new();
    let name_changed = old.name != fields.name;
    // tags are a set: the store keeps them sorted, a card in any order
    let sorted = |tags: &[String]| {
        let mut t = tags.to_vec();
        t.sort();
        t
    };
    let tags_changed = sorted(&old.tags) != sorted(&fields.tags);
    let mut wrote_n = false;
    for line in &base {
        match line.name.as_str() {
            "END" => {}
            "FN" | "N" if name_changed => {}
            "N" => {
                wrote_n = true;
                out_lines.push(line.raw.clone());
            }
            "EMAIL" => {
                let e = normalize_email(&unescape(&line.value));
                match e {
                    Some(e) if fields.emails.contains(&e) && !seen_emails.contains(&e) => {
                        seen_emails.push(e);
                        out_lines.push(line.raw.clone());
                    }
                    Some(_) => {}
                    // not an address Switchboard could read: not its to remove
                    None => out_lines.push(line.raw.clone()),
                }
            }
            "TEL" => {
                let p = normalize_phone(&unescape(&line.value));
                match p {
                    Some(p) if fields.phones.contains(&p) && !seen_phones.contains(&p) => {
                        seen_phones.push(p);
                        out_lines.push(line.raw.clone());
                    }
                    Some(_) => {}
                    None => out_lines.push(line.raw.clone()),
                }
            }
            "ORG" if old.company != fields.company => {}
            "TITLE" if old.job_title != fields.job_title => {}
            "CATEGORIES" if tags_changed => {}
            "REV" => {}
            _ => out_lines.push(line.raw.clone()),
        }
    }
    if name_changed || current.is_none() {
        let name = fields.name.clone().unwrap_or_default();
        out_lines.push(format!("FN:{}", escape(&name)));
        out_lines.push(format!("N:{}", n_from_name(&name)));
    } else if !wrote_n && !v4 {
        // vCard 3.0 requires N
        out_lines.push(format!(
            "N:{}",
            n_from_name(fields.name.as_deref().unwrap_or_default())
        ));
    }
    for e in &fields.emails {
        if !seen_emails.contains(e) {
            out_lines.push(format!("EMAIL;TYPE=INTERNET:{}", escape(e)));
        }
    }
    for p in &fields.phones {
        if !seen_phones.contains(p) {
            out_lines.push(if v4 {
                format!("TEL;VALUE=uri:tel:{p}")
            } else {
                format!("TEL:{p}")
            });
        }
    }
    if (current.is_none() || old.company != fields.company)
        && let Some(company) = &fields.company
    {
        out_lines.push(format!("ORG:{}", escape(company)));
    }
    if (current.is_none() || old.job_title != fields.job_title)
        && let Some(title) = &fields.job_title
    {
        out_lines.push(format!("TITLE:{}", escape(title)));
    }
    if (current.is_none() || tags_changed) && !fields.tags.is_empty() {
        let tags: Vec<String> = fields.tags.iter().map(|t| escape(t)).collect();
        out_lines.push(format!("CATEGORIES:{}", tags.join(",")));
    }
    out_lines.push("END:VCARD".to_owned());
    let mut out = String::new();
    for line in out_lines {
        fold(&line, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARD: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:abc-1\r\nFN:Ann Lee\r\nN:Lee;Ann;;;\r\n\
        item1.EMAIL;TYPE=work:Ann@Example.org\r\nTEL;TYPE=cell:+1 (415) 555-0100\r\n\
        ORG:Acme\\, Inc.;Sales\r\nTITLE:CTO\r\nCATEGORIES:vip,partner\r\n\
        X-FOO;X-PARAM=\"a:b\":kept\r\nNOTE:a long note that is folded over two lines because it\r\n  is long\r\n\
        END:VCARD\r\n";

    #[test]
    fn parse_reads_the_modelled_properties() {
        let f = parse(CARD);
        assert_eq!(f.uid.as_deref(), Some("abc-1"));
        assert_eq!(f.name.as_deref(), Some("Ann Lee"));
        assert_eq!(f.emails, ["ann@example.org"]);
        assert_eq!(f.phones, ["+14155550100"]);
        assert_eq!(f.company.as_deref(), Some("Acme, Inc."));
        assert_eq!(f.job_title.as_deref(), Some("CTO"));
        assert_eq!(f.tags, ["vip", "partner"]);
    }

    #[test]
    fn parse_takes_the_name_from_n_without_fn_and_reads_v4_tel_uris() {
        let f = parse(
            "BEGIN:VCARD\nVERSION:4.0\nN:Lee;Ann;;Dr.;\nTEL;VALUE=uri:tel:+44-20-7946-0000\nEND:VCARD\n",
        );
        assert_eq!(f.name.as_deref(), Some("Dr. Ann Lee"));
        assert_eq!(f.phones, ["+442079460000"]);
    }

    #[test]
    fn patch_keeps_unmodelled_lines_and_untouched_properties_verbatim() {
        let mut f = parse(CARD);
        f.phones.push("+14155550199".into());
        f.tags = vec!["vip".into()];
        let out = patch(Some(CARD), &f, "ignored");
        assert!(out.contains("X-FOO;X-PARAM=\"a:b\":kept\r\n"), "{out}");
        assert!(out.contains("item1.EMAIL;TYPE=work:Ann@Example.org\r\n"));
        assert!(out.contains("TEL;TYPE=cell:+1 (415) 555-0100\r\n"));
        assert!(out.contains("TEL:+14155550199\r\n"));
        assert!(out.contains("CATEGORIES:vip\r\n"));
        assert!(!out.contains("partner"));
        assert!(
            out.contains("ORG:Acme\\, Inc.;Sales\r\n"),
            "unchanged ORG keeps its unit"
        );
        assert!(out.contains("UID:abc-1\r\n"));
        assert!(out.ends_with("END:VCARD\r\n"));
        let again = parse(&out);
        assert_eq!(again.phones, ["+14155550100", "+14155550199"]);
        assert_eq!(again.emails, f.emails);
    }

    #[test]
    fn the_same_values_give_the_same_card() {
        let mut f = parse(CARD);
        f.tags.sort();
        let out = patch(Some(CARD), &f, "ignored");
        assert!(
            same(&out, CARD),
            "tags in another order, refolded only:\n{out}"
        );
        assert!(same(&CARD.replace("\r\n", "\n"), CARD));
    }

    #[test]
    fn patch_drops_removed_values_and_rewrites_a_changed_name() {
        let mut f = parse(CARD);
        f.emails.clear();
        f.name = Some("Ann Smith".into());
        let out = patch(Some(CARD), &f, "ignored");
        assert!(!out.contains("EMAIL"));
        assert!(out.contains("FN:Ann Smith\r\nN:Smith;Ann;;;\r\n"), "{out}");
        assert_eq!(out.matches("FN:").count(), 1);
    }

    #[test]
    fn a_new_card_has_the_given_uid_and_round_trips() {
        let f = CardFields {
            name: Some("Bo, Jr.".into()),
            emails: vec!["bo@example.org".into()],
            phones: vec!["+14155550123".into()],
            company: Some("Initech".into()),
            job_title: Some("Engineer".into()),
            tags: vec!["a,b".into(), "c".into()],
            ..CardFields::default()
        };
        let out = patch(None, &f, "sb-1");
        assert!(out.starts_with("BEGIN:VCARD\r\nVERSION:3.0\r\n"));
        let back = parse(&out);
        assert_eq!(back.uid.as_deref(), Some("sb-1"));
        assert_eq!(back.name, f.name);
        assert_eq!(back.emails, f.emails);
        assert_eq!(back.phones, f.phones);
        assert_eq!(back.company, f.company);
        assert_eq!(back.job_title, f.job_title);
        assert_eq!(back.tags, f.tags);
    }

    #[test]
    fn long_lines_fold_at_75_octets_without_splitting_characters() {
        let f = CardFields {
            name: Some("Ä".repeat(60)),
            ..CardFields::default()
        };
        let out = patch(None, &f, "u");
        for line in out.split("\r\n") {
            assert!(line.len() <= 75, "{line:?}");
        }
        assert_eq!(parse(&out).name, f.name);
    }
}
