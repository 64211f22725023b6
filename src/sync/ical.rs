//! iCalendar (RFC 5545) to and from the record store's activities: a `VEVENT` is a meeting, a
//! `VTODO` a task.
//!
//! Hand-written, like `vcard.rs`, for the same reason: the sync must *patch* an object — every
//! property, parameter and component Switchboard does not model (alarms, overrides of single
//! occurrences, `X-` properties, attachments, the `VTIMEZONE`s) goes back to the server as
//! read. Only the modelled properties of the series' master component are rewritten, and only
//! when their value changed.
//!
//! Modelled: `UID`, `SUMMARY`, `DESCRIPTION`, `LOCATION`, `DTSTART` / `DTEND` (or
//! `DURATION`) / `DUE`, `STATUS`, `ORGANIZER`, `ATTENDEE` (address and `PARTSTAT`), `RRULE`
//! (kept verbatim: a recurring event is one activity, the series, never expanded), `URL` and
//! the providers' online-meeting properties (`CONFERENCE`, `X-GOOGLE-CONFERENCE`,
//! `X-MICROSOFT-SKYPETEAMSMEETINGURL`), `LAST-MODIFIED` (for `conflict.winner: newest`).
//!
//! Times: a `DATE` is an all-day value (midnight UTC of that date); a `DATE-TIME` in UTC is
//! taken as is; one with `TZID` is resolved through the IANA database when the TZID is an IANA
//! name (with or without the `/` prefix some clients write), else through the object's own
//! `VTIMEZONE` (its `STANDARD` / `DAYLIGHT` observances with yearly `BYMONTH`/`BYDAY` rules,
//! as Outlook writes `W. Europe Standard Time`); a TZID neither explains is read as UTC and
//! said so in [`Fields::warnings`]. A floating time (no zone) is read as UTC. The zone's name
//! is kept ([`Fields::time_zone`]) so the store holds UTC plus the original zone.
//!
//! Writing: a changed time is written in its zone when the object carries that zone's
//! `VTIMEZONE` and the zone is an IANA name, else in UTC (RFC 5545 wants a `VTIMEZONE` for
//! every `TZID`, and a new object has none). `METHOD` is never written (a stored CalDAV object
//! has none; it would make a server treat the `PUT` as an iTIP message). Each `ORGANIZER` /
//! `ATTENDEE` line gets `SCHEDULE-AGENT=CLIENT` when the caller says the address must not be
//! scheduled by the server (BX-03), and loses a `SCHEDULE-AGENT` it had otherwise.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

use crate::store::records::normalize_email;

/// Which component an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ItemKind {
    /// `VEVENT`: a meeting.
    #[default]
    Event,
    /// `VTODO`: a task.
    Todo,
}

impl ItemKind {
    fn component(self) -> &'static str {
        match self {
            ItemKind::Event => "VEVENT",
            ItemKind::Todo => "VTODO",
        }
    }
}

/// The activity fields an item carries, in the store's forms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    /// Event or task.
    pub kind: ItemKind,
    /// `UID`.
    pub uid: Option<String>,
    /// `SUMMARY`.
    pub summary: Option<String>,
    /// `DESCRIPTION`.
    pub description: Option<String>,
    /// `LOCATION`.
    pub location: Option<String>,
    /// `DTSTART`, in UTC.
    pub start: Option<DateTime<Utc>>,
    /// `DTEND` (or `DTSTART` + `DURATION`), in UTC; for an all-day event the day after.
    pub end: Option<DateTime<Utc>>,
    /// `DUE` (tasks), in UTC.
    pub due: Option<DateTime<Utc>>,
    /// `DTSTART` is a `DATE`.
    pub all_day: bool,
    /// The `TZID` the times were written in.
    pub time_zone: Option<String>,
    /// `STATUS`, as written (`CONFIRMED`, `NEEDS-ACTION`, ...).
    pub status: Option<String>,
    /// The `ORGANIZER`'s address, lower-cased.
    pub organizer: Option<String>,
    /// The `ATTENDEE`s: address (lower-cased) and response (`none`, `accepted`, ...).
    pub attendees: Vec<(String, String)>,
    /// `RRULE`, verbatim.
    pub rrule: Option<String>,
    /// The online-meeting link (`CONFERENCE`, a provider's `X-` property, else `URL`).
    pub url: Option<String>,
    /// `LAST-MODIFIED` (else `DTSTAMP`).
    pub last_modified: Option<DateTime<Utc>>,
    /// What could not be read as written (an unknown TZID read as UTC).
    pub warnings: Vec<String>,
}

/// One logical (unfolded) content line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    /// As read, unfolded.
    raw: String,
    /// The property name, upper-cased.
    name: String,
    /// Parameters: upper-cased name, value with quotes removed.
    params: Vec<(String, String)>,
    /// The value, still escaped.
    value: String,
}

impl Line {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A component: its lines and sub-components in their order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Component {
    name: String,
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Prop(Line),
    Sub(Component),
}

impl Component {
    fn props(&self) -> impl Iterator<Item = &Line> {
        self.nodes.iter().filter_map(|n| match n {
            Node::Prop(l) => Some(l),
            Node::Sub(_) => None,
        })
    }

    fn prop(&self, name: &str) -> Option<&Line> {
        self.props().find(|l| l.name == name)
    }

    fn subs(&self) -> impl Iterator<Item = &Component> {
        self.nodes.iter().filter_map(|n| match n {
            Node::Sub(c) => Some(c),
            Node::Prop(_) => None,
        })
    }

    fn write(&self, out: &mut String) {
        fold(&format!("BEGIN:{}", self.name), out);
        for node in &self.nodes {
            match node {
                Node::Prop(l) => fold(&l.raw, out),
                Node::Sub(c) => c.write(out),
            }
        }
        fold(&format!("END:{}", self.name), out);
    }
}

/// Splits `text` into logical lines (CRLF or LF; a line starting with a space or a tab
/// continues the previous one).
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

/// Splits `text` at `sep` outside double quotes.
fn split_outside_quotes(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut from = 0;
    for (i, ch) in text.char_indices() {
        if ch == '"' {
            in_quotes = !in_quotes;
        } else if ch == sep && !in_quotes {
            parts.push(&text[from..i]);
            from = i + ch.len_utf8();
        }
    }
    parts.push(&text[from..]);
    parts
}

/// The position of the colon that ends a line's name and parameters.
fn value_colon(raw: &str) -> Option<usize> {
    let mut in_quotes = false;
    for (i, ch) in raw.char_indices() {
        match ch {
            '"' => in_quotes = !in_quotes,
            ':' if !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

fn parse_line(raw: String) -> Line {
    let (head, value) = match value_colon(&raw) {
        Some(i) => (&raw[..i], raw[i + 1..].to_owned()),
        None => (raw.as_str(), String::new()),
    };
    let mut segments = split_outside_quotes(head, ';').into_iter();
    let name = segments.next().unwrap_or_default().to_ascii_uppercase();
    let params = segments
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_ascii_uppercase(), v.replace('"', "")),
            None => (p.to_ascii_uppercase(), String::new()),
        })
        .collect();
    Line {
        name,
        params,
        value,
        raw: raw.clone(),
    }
}

/// The line `line` with parameter `key` set to `value` (or removed, with `None`); the other
/// parameters kept as written.
fn with_param(line: &Line, key: &str, value: Option<&str>) -> Line {
    let head = &line.raw[..value_colon(&line.raw).unwrap_or(line.raw.len())];
    let mut segments: Vec<String> = split_outside_quotes(head, ';')
        .into_iter()
        .map(str::to_owned)
        .collect();
    let name = segments.remove(0);
    segments.retain(|s| {
        !s.split('=')
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case(key))
    });
    if let Some(v) = value {
        segments.push(format!("{key}={v}"));
    }
    let mut raw = name;
    for s in segments {
        raw.push(';');
        raw.push_str(&s);
    }
    raw.push(':');
    raw.push_str(&line.value);
    parse_line(raw)
}

/// Unescapes a text value (`\n`, `\,`, `\;`, `\\`).
fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(ch) = chars.next() {
        if ch == '\\' {
            match chars.next() {
                Some('n' | 'N') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(ch);
        }
    }
    out
}

/// Escapes a text value.
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

/// Builds the component tree; `None` when the text holds no `VCALENDAR`. Lines outside a
/// component and stray `END`s are ignored; a component left open is closed at the end.
fn parse_tree(text: &str) -> Option<Component> {
    let mut stack: Vec<Component> = Vec::new();
    let mut root = None;
    for raw in unfold(text) {
        let line = parse_line(raw);
        match line.name.as_str() {
            "BEGIN" => stack.push(Component {
                name: line.value.trim().to_ascii_uppercase(),
                nodes: Vec::new(),
            }),
            "END" => {
                let name = line.value.trim().to_ascii_uppercase();
                if !stack.iter().any(|c| c.name == name) {
                    continue;
                }
                while let Some(done) = stack.pop() {
                    let matched = done.name == name;
                    match stack.last_mut() {
                        Some(parent) => parent.nodes.push(Node::Sub(done)),
                        None => {
                            if root.is_none() && done.name == "VCALENDAR" {
                                root = Some(done);
                            }
                        }
                    }
                    if matched {
                        break;
                    }
                }
            }
            _ => {
                if let Some(c) = stack.last_mut() {
                    c.nodes.push(Node::Prop(line));
                }
            }
        }
    }
    while let Some(done) = stack.pop() {
        match stack.last_mut() {
            Some(parent) => parent.nodes.push(Node::Sub(done)),
            None => {
                if root.is_none() && done.name == "VCALENDAR" {
                    root = Some(done);
                }
            }
        }
    }
    root
}

/// The index of the master component (the first `VEVENT` / `VTODO` without
/// `RECURRENCE-ID`) among the calendar's nodes.
fn master_index(cal: &Component) -> Option<usize> {
    cal.nodes.iter().position(|n| {
        matches!(n, Node::Sub(c) if (c.name == "VEVENT" || c.name == "VTODO")
            && c.prop("RECURRENCE-ID").is_none())
    })
}

/// A `PARTSTAT` as the store's response.
fn response_of(partstat: Option<&str>) -> String {
    match partstat.map(str::to_ascii_uppercase).as_deref() {
        None | Some("NEEDS-ACTION") => "none".to_owned(),
        Some(other) => other.to_ascii_lowercase(),
    }
}

/// The store's response as a `PARTSTAT`.
fn partstat_of(response: &str) -> String {
    match response {
        "none" | "" => "NEEDS-ACTION".to_owned(),
        other => other.to_ascii_uppercase(),
    }
}

/// The address of a `mailto:` value.
fn address_of(value: &str) -> Option<String> {
    let v = value.trim();
    let v = match v.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("mailto:") => &v[7..],
        _ => v,
    };
    normalize_email(v)
}

fn parse_offset(text: &str) -> Option<i64> {
    let t = text.trim();
    let (sign, digits) = match t.as_bytes().first()? {
        b'+' => (1, &t[1..]),
        b'-' => (-1, &t[1..]),
        _ => (1, t),
    };
    if !(digits.len() == 4 || digits.len() == 6) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i64 = digits[..2].parse().ok()?;
    let m: i64 = digits[2..4].parse().ok()?;
    let s: i64 = digits.get(4..6).map_or(Some(0), |s| s.parse().ok())?;
    Some(sign * (h * 3600 + m * 60 + s))
}

fn parse_local(value: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(value.trim().trim_end_matches('Z'), "%Y%m%dT%H%M%S").ok()
}

/// The `n`th (negative: from the end) `weekday` of `month` in `year`.
fn nth_weekday(year: i32, month: u32, weekday: chrono::Weekday, n: i32) -> Option<NaiveDate> {
    if n >= 0 {
        let first = NaiveDate::from_ymd_opt(year, month, 1)?;
        let shift = (7 + weekday.num_days_from_monday() as i64
            - first.weekday().num_days_from_monday() as i64)
            % 7;
        let day = first + Duration::days(shift + 7 * (i64::from(n.max(1)) - 1));
        (day.month() == month).then_some(day)
    } else {
        let next = if month == 12 {
            NaiveDate::from_ymd_opt(year + 1, 1, 1)?
        } else {
            NaiveDate::from_ymd_opt(year, month + 1, 1)?
        };
        let last = next.pred_opt()?;
        let shift = (7 + last.weekday().num_days_from_monday() as i64
            - weekday.num_days_from_monday() as i64)
            % 7;
        let day = last - Duration::days(shift + 7 * (i64::from(-n) - 1));
        (day.month() == month).then_some(day)
    }
}

fn weekday_of(code: &str) -> Option<chrono::Weekday> {
    use chrono::Weekday::*;
    Some(match code {
        "MO" => Mon,
        "TU" => Tue,
        "WE" => Wed,
        "TH" => Thu,
        "FR" => Fri,
        "SA" => Sat,
        "SU" => Sun,
        _ => return None,
    })
}

/// When observance `obs` (a `STANDARD` / `DAYLIGHT`) begins in `year`, local time.
fn onset(obs: &Component, year: i32) -> Option<NaiveDateTime> {
    let start = parse_local(&obs.prop("DTSTART")?.value)?;
    if year < start.year() {
        return None;
    }
    let Some(rule) = obs.prop("RRULE") else {
        return (year == start.year()).then_some(start);
    };
    let parts: Vec<(&str, &str)> = rule
        .value
        .split(';')
        .filter_map(|p| p.split_once('='))
        .collect();
    let get = |k: &str| {
        parts
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| *v)
    };
    if !get("FREQ").is_some_and(|f| f.eq_ignore_ascii_case("YEARLY")) {
        return None;
    }
    if let Some(until) = get("UNTIL").and_then(parse_local)
        && until.year() < year
    {
        return None;
    }
    let month: u32 = get("BYMONTH")
        .and_then(|m| m.parse().ok())
        .unwrap_or(start.month());
    let date = match get("BYDAY") {
        Some(byday) => {
            let byday = byday.trim();
            let split = byday.len().checked_sub(2)?;
            if !byday.is_char_boundary(split) {
                return None;
            }
            let n: i32 = match &byday[..split] {
                "" | "+" => 1,
                num => num.trim_start_matches('+').parse().ok()?,
            };
            nth_weekday(year, month, weekday_of(&byday[split..])?, n)?
        }
        None => NaiveDate::from_ymd_opt(year, month, start.day())?,
    };
    Some(date.and_time(start.time()))
}

/// The UTC offset (seconds) of local time `local` by a `VTIMEZONE`'s observances: the one
/// that began last before it.
fn vtimezone_offset(tz: &Component, local: NaiveDateTime) -> Option<i64> {
    let observances: Vec<&Component> = tz
        .subs()
        .filter(|c| c.name == "STANDARD" || c.name == "DAYLIGHT")
        .collect();
    let mut best: Option<(NaiveDateTime, i64)> = None;
    for obs in &observances {
        let Some(to) = obs.prop("TZOFFSETTO").and_then(|l| parse_offset(&l.value)) else {
            continue;
        };
        let mut candidates = vec![onset(obs, local.year()), onset(obs, local.year() - 1)];
        if obs.prop("RRULE").is_none() {
            candidates.push(obs.prop("DTSTART").and_then(|l| parse_local(&l.value)));
        }
        for at in candidates.into_iter().flatten() {
            if at <= local && best.is_none_or(|(b, _)| at > b) {
                best = Some((at, to));
            }
        }
    }
    best.map(|(_, to)| to).or_else(|| {
        // before every observance: the first one's offset before it began
        observances
            .first()
            .and_then(|o| o.prop("TZOFFSETFROM"))
            .and_then(|l| parse_offset(&l.value))
    })
}

/// `local` in zone `tzid`: IANA first, else the object's `VTIMEZONE`. `None`: unknown zone.
fn resolve_zone(cal: &Component, tzid: &str, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    if let Ok(tz) = tzid.trim_start_matches('/').parse::<chrono_tz::Tz>() {
        // a time in a spring-forward gap is read an hour later, as clients show it
        let resolved = tz.from_local_datetime(&local).earliest().or_else(|| {
            tz.from_local_datetime(&(local + Duration::hours(1)))
                .earliest()
        })?;
        return Some(resolved.with_timezone(&Utc));
    }
    let vtz = cal
        .subs()
        .find(|c| c.name == "VTIMEZONE" && c.prop("TZID").is_some_and(|l| l.value == tzid))?;
    let offset = vtimezone_offset(vtz, local)?;
    Some((local - Duration::seconds(offset)).and_utc())
}

/// A `DTSTART` / `DTEND` / `DUE` line: the time in UTC, whether it is a `DATE`, its TZID.
fn parse_time(
    cal: &Component,
    line: &Line,
    warnings: &mut Vec<String>,
) -> Option<(DateTime<Utc>, bool, Option<String>)> {
    let value = line.value.trim();
    if line
        .param("VALUE")
        .is_some_and(|v| v.eq_ignore_ascii_case("DATE"))
        || value.len() == 8
    {
        let date = NaiveDate::parse_from_str(value, "%Y%m%d").ok()?;
        return Some((date.and_time(NaiveTime::MIN).and_utc(), true, None));
    }
    let local = parse_local(value)?;
    if value.ends_with('Z') {
        return Some((local.and_utc(), false, None));
    }
    match line.param("TZID") {
        None => Some((local.and_utc(), false, None)),
        Some(tzid) => match resolve_zone(cal, tzid, local) {
            Some(t) => Some((t, false, Some(tzid.to_owned()))),
            None => {
                warnings.push(format!(
                    "{}: time zone {tzid:?} is neither an IANA name nor described by a VTIMEZONE; read as UTC",
                    line.name
                ));
                Some((local.and_utc(), false, Some(tzid.to_owned())))
            }
        },
    }
}

/// An RFC 5545 `DURATION` (`P1D`, `PT1H30M`, `-PT15M`, `P2W`).
fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let (sign, t) = match t.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, t.strip_prefix('+').unwrap_or(t)),
    };
    let t = t.strip_prefix('P')?;
    let mut total = 0i64;
    let mut number = String::new();
    let mut in_time = false;
    for ch in t.chars() {
        match ch {
            'T' => in_time = true,
            '0'..='9' => number.push(ch),
            unit => {
                let n: i64 = number.parse().ok()?;
                number.clear();
                total += n * match (unit, in_time) {
                    ('W', false) => 7 * 86_400,
                    ('D', false) => 86_400,
                    ('H', true) => 3600,
                    ('M', true) => 60,
                    ('S', true) => 1,
                    _ => return None,
                };
            }
        }
    }
    number.is_empty().then(|| Duration::seconds(sign * total))
}

fn text_of(line: Option<&Line>) -> Option<String> {
    line.map(|l| unescape(&l.value))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The online-meeting properties, in the order they are preferred.
const MEETING_PROPS: [&str; 4] = [
    "CONFERENCE",
    "X-GOOGLE-CONFERENCE",
    "X-MICROSOFT-SKYPETEAMSMEETINGURL",
    "URL",
];

/// Reads the modelled properties of an iCalendar object's master `VEVENT` / `VTODO`; `None`
/// when it has neither.
pub fn parse(text: &str) -> Option<Fields> {
    let cal = parse_tree(text)?;
    let Node::Sub(item) = &cal.nodes[master_index(&cal)?] else {
        return None;
    };
    let mut f = Fields {
        kind: if item.name == "VTODO" {
            ItemKind::Todo
        } else {
            ItemKind::Event
        },
        uid: text_of(item.prop("UID")),
        summary: text_of(item.prop("SUMMARY")),
        description: text_of(item.prop("DESCRIPTION")),
        location: text_of(item.prop("LOCATION")),
        status: text_of(item.prop("STATUS")).map(|s| s.to_ascii_uppercase()),
        rrule: item.prop("RRULE").map(|l| l.value.trim().to_owned()),
        ..Fields::default()
    };
    let mut warnings = Vec::new();
    if let Some((t, all_day, zone)) = item
        .prop("DTSTART")
        .and_then(|l| parse_time(&cal, l, &mut warnings))
    {
        f.start = Some(t);
        f.all_day = all_day;
        f.time_zone = zone;
    }
    if let Some((t, _, zone)) = item
        .prop("DTEND")
        .and_then(|l| parse_time(&cal, l, &mut warnings))
    {
        f.end = Some(t);
        f.time_zone = f.time_zone.or(zone);
    } else if let (Some(start), Some(d)) = (
        f.start,
        item.prop("DURATION").and_then(|l| parse_duration(&l.value)),
    ) {
        f.end = Some(start + d);
    } else if f.all_day && f.kind == ItemKind::Event {
        // RFC 5545 3.6.1: a DATE DTSTART without DTEND lasts one day
        f.end = f.start.map(|s| s + Duration::days(1));
    }
    if let Some((t, _, zone)) = item
        .prop("DUE")
        .and_then(|l| parse_time(&cal, l, &mut warnings))
    {
        f.due = Some(t);
        f.time_zone = f.time_zone.or(zone);
    }
    f.organizer = item.prop("ORGANIZER").and_then(|l| address_of(&l.value));
    for l in item.props().filter(|l| l.name == "ATTENDEE") {
        if let Some(a) = address_of(&l.value)
            && !f.attendees.iter().any(|(e, _)| *e == a)
        {
            f.attendees.push((a, response_of(l.param("PARTSTAT"))));
        }
    }
    f.url = MEETING_PROPS
        .iter()
        .find_map(|name| text_of(item.prop(name)));
    f.last_modified = item
        .prop("LAST-MODIFIED")
        .or_else(|| item.prop("DTSTAMP"))
        .and_then(|l| parse_local(&l.value))
        .map(|t| t.and_utc());
    f.warnings = warnings;
    Some(f)
}

/// Whether two objects hold the same logical lines (line endings and folding aside).
pub fn same(a: &str, b: &str) -> bool {
    unfold(a) == unfold(b)
}

fn utc_stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// A time property as written: a `DATE` when all-day, in `zone` when the object describes
/// it and it is an IANA name, else UTC.
fn time_line(
    cal: &Component,
    name: &str,
    t: DateTime<Utc>,
    all_day: bool,
    zone: Option<&str>,
) -> String {
    if all_day {
        return format!("{name};VALUE=DATE:{}", t.format("%Y%m%d"));
    }
    if let Some(zone) = zone
        && cal
            .subs()
            .any(|c| c.name == "VTIMEZONE" && c.prop("TZID").is_some_and(|l| l.value == zone))
        && let Ok(tz) = zone.trim_start_matches('/').parse::<chrono_tz::Tz>()
    {
        let local = t.with_timezone(&tz);
        return format!("{name};TZID={zone}:{}", local.format("%Y%m%dT%H%M%S"));
    }
    format!("{name}:{}", utc_stamp(t))
}

/// The valid `STATUS` values of each component.
fn valid_status(kind: ItemKind, status: &str) -> bool {
    match kind {
        ItemKind::Event => matches!(status, "TENTATIVE" | "CONFIRMED" | "CANCELLED"),
        ItemKind::Todo => matches!(
            status,
            "NEEDS-ACTION" | "COMPLETED" | "IN-PROCESS" | "CANCELLED"
        ),
    }
}

/// The `SCHEDULE-AGENT` of an `ORGANIZER` / `ATTENDEE` line for `address`: `CLIENT` when the
/// server must not schedule it, else none (the server's default, `SERVER`).
fn scheduled(line: &Line, client_only: &dyn Fn(&str) -> bool) -> Line {
    let agent = address_of(&line.value)
        .is_none_or(|a| client_only(&a))
        .then_some("CLIENT");
    if line.param("SCHEDULE-AGENT") == agent {
        return line.clone();
    }
    with_param(line, "SCHEDULE-AGENT", agent)
}

/// The object to write for `fields`: `current` (the object as last read) with only the
/// modelled properties of its master component changed, or, without `current`, a new object
/// of `fields.kind` with `uid`. `client_only(address)` says which participants the server must
/// not schedule (BX-03). `DTSTAMP` / `LAST-MODIFIED` become `now`. When no modelled property
/// changed, `current` is returned as it is.
/// `fields.uid` is ignored: an item's UID never changes.
pub fn patch(
    current: Option<&str>,
    fields: &Fields,
    uid: &str,
    now: DateTime<Utc>,
    client_only: &dyn Fn(&str) -> bool,
) -> String {
    let mut cal = current.and_then(parse_tree).unwrap_or_else(|| {
        let item = Component {
            name: fields.kind.component().to_owned(),
            nodes: vec![Node::Prop(parse_line(format!("UID:{}", escape(uid))))],
        };
        Component {
            name: "VCALENDAR".to_owned(),
            nodes: vec![
                Node::Prop(parse_line("VERSION:2.0".to_owned())),
                Node::Prop(parse_line(
                    "PRODID:-//Switchboard//CalDAV sync//EN".to_owned(),
                )),
                Node::Prop(parse_line("CALSCALE:GREGORIAN".to_owned())),
                Node::Sub(item),
            ],
        }
    });
    let is_new = current.is_none_or(|c| parse(c).is_none());
    let old = if is_new {
        Fields {
            kind: fields.kind,
            ..Fields::default()
        }
    } else {
        current.and_then(parse).unwrap_or_default()
    };
    // a stored CalDAV object carries no iTIP method
    cal.nodes
        .retain(|n| !matches!(n, Node::Prop(l) if l.name == "METHOD"));
    let index = match master_index(&cal) {
        Some(i) => i,
        None => {
            cal.nodes.push(Node::Sub(Component {
                name: fields.kind.component().to_owned(),
                nodes: vec![Node::Prop(parse_line(format!("UID:{}", escape(uid))))],
            }));
            cal.nodes.len() - 1
        }
    };
    let frame = cal.clone();
    let Node::Sub(item) = &mut cal.nodes[index] else {
        unreachable!("master_index points at a component")
    };
    let kind = if item.name == "VTODO" {
        ItemKind::Todo
    } else {
        ItemKind::Event
    };
    let times_changed = old.start != fields.start
        || old.end != fields.end
        || old.due != fields.due
        || old.all_day != fields.all_day;
    let status = fields
        .status
        .as_deref()
        .map(str::to_ascii_uppercase)
        .filter(|s| valid_status(kind, s));
    // an unknown status here (free text from the API) leaves the remote one alone
    let status_changed = fields.status.is_some() && status.is_some() && old.status != status
        || fields.status.is_none() && old.status.is_some();
    let mut changed = is_new;
    let mut kept: Vec<Node> = Vec::new();
    let mut seen_attendees: Vec<String> = Vec::new();
    for node in std::mem::take(&mut item.nodes) {
        let Node::Prop(line) = node else {
            kept.push(node);
            continue;
        };
        let keep = match line.name.as_str() {
            "SUMMARY" => old.summary == fields.summary,
            "DESCRIPTION" => old.description == fields.description,
            "LOCATION" => old.location == fields.location,
            "DTSTART" | "DTEND" | "DUE" | "DURATION" => !times_changed,
            "STATUS" => !status_changed,
            "RRULE" => old.rrule == fields.rrule,
            "URL" => old.url == fields.url,
            "DTSTAMP" | "LAST-MODIFIED" => true,
            "ORGANIZER" => {
                if old.organizer == fields.organizer {
                    kept.push(Node::Prop(scheduled(&line, client_only)));
                } else {
                    changed = true;
                }
                continue;
            }
            "ATTENDEE" => {
                match address_of(&line.value) {
                    Some(a) => match fields.attendees.iter().find(|(e, _)| *e == a) {
                        Some((_, response)) if !seen_attendees.contains(&a) => {
                            seen_attendees.push(a);
                            let mut l = line.clone();
                            if response_of(line.param("PARTSTAT")) != *response {
                                l = with_param(&l, "PARTSTAT", Some(&partstat_of(response)));
                            }
                            changed |= l != line;
                            kept.push(Node::Prop(scheduled(&l, client_only)));
                        }
                        _ => changed = true,
                    },
                    // not an address Switchboard could read: not its to remove
                    None => kept.push(Node::Prop(line)),
                }
                continue;
            }
            _ => true,
        };
        if keep {
            kept.push(Node::Prop(line));
        } else {
            changed = true;
        }
    }
    let mut added: Vec<String> = Vec::new();
    let text_prop =
        |name: &str, old: &Option<String>, new: &Option<String>, added: &mut Vec<String>| {
            if old != new
                && let Some(v) = new
            {
                added.push(format!("{name}:{}", escape(v)));
            }
        };
    text_prop("SUMMARY", &old.summary, &fields.summary, &mut added);
    text_prop(
        "DESCRIPTION",
        &old.description,
        &fields.description,
        &mut added,
    );
    text_prop("LOCATION", &old.location, &fields.location, &mut added);
    if times_changed {
        let zone = fields.time_zone.as_deref();
        if let Some(s) = fields.start {
            added.push(time_line(&frame, "DTSTART", s, fields.all_day, zone));
        }
        if kind == ItemKind::Event
            && let Some(e) = fields.end
        {
            added.push(time_line(&frame, "DTEND", e, fields.all_day, zone));
        }
        if kind == ItemKind::Todo
            && let Some(d) = fields.due.or(fields.end)
        {
            added.push(time_line(&frame, "DUE", d, fields.all_day, zone));
        }
    }
    if status_changed && let Some(s) = &status {
        added.push(format!("STATUS:{s}"));
    }
    if old.rrule != fields.rrule
        && let Some(r) = &fields.rrule
    {
        added.push(format!("RRULE:{r}"));
    }
    if old.url != fields.url
        && let Some(u) = &fields.url
    {
        added.push(format!("URL:{u}"));
    }
    if old.organizer != fields.organizer
        && let Some(o) = &fields.organizer
    {
        let l = scheduled(&parse_line(format!("ORGANIZER:mailto:{o}")), client_only);
        added.push(l.raw);
    }
    for (a, response) in &fields.attendees {
        if !seen_attendees.contains(a) {
            changed = true;
            let l = parse_line(format!(
                "ATTENDEE;PARTSTAT={};RSVP=FALSE:mailto:{a}",
                partstat_of(response)
            ));
            added.push(scheduled(&l, client_only).raw);
        }
    }
    changed |= !added.is_empty();
    if !changed && let Some(current) = current {
        // nothing modelled changed: the object is not Switchboard's to rewrite (its
        // scheduling parameters only matter on a write that happens anyway)
        return current.to_owned();
    }
    kept.retain(
        |n| !matches!(n, Node::Prop(l) if l.name == "DTSTAMP" || l.name == "LAST-MODIFIED"),
    );
    added.push(format!("DTSTAMP:{}", utc_stamp(now)));
    added.push(format!("LAST-MODIFIED:{}", utc_stamp(now)));
    // new properties go after the last property, before the sub-components (VALARM)
    let at = kept
        .iter()
        .rposition(|n| matches!(n, Node::Prop(_)))
        .map_or(0, |i| i + 1);
    for (i, raw) in added.into_iter().enumerate() {
        kept.insert(at + i, Node::Prop(parse_line(raw)));
    }
    item.nodes = kept;
    let mut out = String::new();
    cal.write(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    }

    const OUTLOOK: &str = "BEGIN:VCALENDAR\r\nMETHOD:PUBLISH\r\nPRODID:Microsoft Exchange Server 2010\r\nVERSION:2.0\r\n\
BEGIN:VTIMEZONE\r\nTZID:W. Europe Standard Time\r\n\
BEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\n\
BEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\n\
END:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:ev-1\r\nSUMMARY:Quarterly review\\, Q3\r\nDESCRIPTION:Join: https://acme.zoom.us/j/123\\nAgenda\r\n\
DTSTART;TZID=W. Europe Standard Time:20260715T100000\r\nDTEND;TZID=W. Europe Standard Time:20260715T110000\r\n\
ORGANIZER;CN=Ann:mailto:Ann@Example.com\r\nATTENDEE;CN=Bob;PARTSTAT=ACCEPTED:mailto:bob@customer.example\r\n\
ATTENDEE;PARTSTAT=NEEDS-ACTION;ROLE=OPT-PARTICIPANT:mailto:carol@customer.example\r\n\
RRULE:FREQ=WEEKLY;BYDAY=WE;COUNT=10\r\nX-ACME-ROOM;X-P=\"a:b\":Blue room\r\nDTSTAMP:20260701T000000Z\r\n\
BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:ev-1\r\nRECURRENCE-ID;TZID=W. Europe Standard Time:20260722T100000\r\nSUMMARY:Moved\r\n\
DTSTART;TZID=W. Europe Standard Time:20260722T120000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn parse_reads_a_non_iana_zone_through_its_vtimezone_and_the_master_only() {
        let f = parse(OUTLOOK).expect("an event");
        assert_eq!(f.kind, ItemKind::Event);
        assert_eq!(f.uid.as_deref(), Some("ev-1"));
        assert_eq!(f.summary.as_deref(), Some("Quarterly review, Q3"));
        assert_eq!(
            f.description.as_deref(),
            Some("Join: https://acme.zoom.us/j/123\nAgenda")
        );
        // July: daylight time, +02:00
        assert_eq!(f.start, Some(t("2026-07-15T08:00:00Z")));
        assert_eq!(f.end, Some(t("2026-07-15T09:00:00Z")));
        assert_eq!(f.time_zone.as_deref(), Some("W. Europe Standard Time"));
        assert_eq!(f.organizer.as_deref(), Some("ann@example.com"));
        assert_eq!(
            f.attendees,
            [
                ("bob@customer.example".to_owned(), "accepted".to_owned()),
                ("carol@customer.example".to_owned(), "none".to_owned())
            ]
        );
        assert_eq!(f.rrule.as_deref(), Some("FREQ=WEEKLY;BYDAY=WE;COUNT=10"));
        assert!(f.warnings.is_empty());
    }

    #[test]
    fn vtimezone_standard_time_applies_in_winter() {
        let winter = OUTLOOK.replace("20260715T1", "20260115T1");
        let f = parse(&winter).expect("an event");
        assert_eq!(f.start, Some(t("2026-01-15T09:00:00Z")));
    }

    #[test]
    fn parse_reads_iana_zones_all_day_events_floating_times_and_tasks() {
        let ny = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nDTSTART;TZID=America/New_York:20260301T090000\nDURATION:PT1H30M\nEND:VEVENT\nEND:VCALENDAR\n";
        let f = parse(ny).expect("event");
        assert_eq!(f.start, Some(t("2026-03-01T14:00:00Z")));
        assert_eq!(f.end, Some(t("2026-03-01T15:30:00Z")));
        assert_eq!(f.time_zone.as_deref(), Some("America/New_York"));
        let day = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:b\nDTSTART;VALUE=DATE:20260704\nEND:VEVENT\nEND:VCALENDAR\n";
        let f = parse(day).expect("event");
        assert!(f.all_day);
        assert_eq!(f.start, Some(t("2026-07-04T00:00:00Z")));
        assert_eq!(f.end, Some(t("2026-07-05T00:00:00Z")));
        let todo = "BEGIN:VCALENDAR\nBEGIN:VTODO\nUID:c\nSUMMARY:Call back\nDUE:20260302T170000\nSTATUS:needs-action\nEND:VTODO\nEND:VCALENDAR\n";
        let f = parse(todo).expect("task");
        assert_eq!(f.kind, ItemKind::Todo);
        assert_eq!(
            f.due,
            Some(t("2026-03-02T17:00:00Z")),
            "floating read as UTC"
        );
        assert_eq!(f.status.as_deref(), Some("NEEDS-ACTION"));
        let unknown = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:d\nDTSTART;TZID=Mars/Olympus:20260301T090000\nEND:VEVENT\nEND:VCALENDAR\n";
        let f = parse(unknown).expect("event");
        assert_eq!(f.start, Some(t("2026-03-01T09:00:00Z")));
        assert_eq!(f.warnings.len(), 1, "{:?}", f.warnings);
        assert!(parse("BEGIN:VCALENDAR\nBEGIN:VJOURNAL\nEND:VJOURNAL\nEND:VCALENDAR").is_none());
        assert!(parse("garbage").is_none());
    }

    #[test]
    fn patch_changes_only_what_changed_and_keeps_the_rest_verbatim() {
        let mut f = parse(OUTLOOK).expect("event");
        f.summary = Some("Quarterly review".into());
        f.attendees.retain(|(a, _)| a != "carol@customer.example");
        f.attendees[0].1 = "declined".into();
        f.attendees.push(("dan@example.com".into(), "none".into()));
        let now = t("2026-07-02T00:00:00Z");
        let out = patch(Some(OUTLOOK), &f, "ignored", now, &|_| true);
        let out = unfold(&out).join("\r\n") + "\r\n";
        assert!(!out.contains("METHOD"), "{out}");
        assert!(out.contains("X-ACME-ROOM;X-P=\"a:b\":Blue room\r\n"));
        assert!(out.contains("TZOFFSETTO:+0100\r\n"));
        assert!(out.contains("BEGIN:VALARM\r\nACTION:DISPLAY\r\n"));
        assert!(out.contains(
            "RECURRENCE-ID;TZID=W. Europe Standard Time:20260722T100000\r\nSUMMARY:Moved\r\n"
        ));
        assert!(
            out.contains("DTSTART;TZID=W. Europe Standard Time:20260715T100000\r\n"),
            "unchanged times stay"
        );
        assert!(out.contains("SUMMARY:Quarterly review\r\n"));
        assert!(!out.contains("carol@"));
        assert!(out.contains("ATTENDEE;CN=Bob;PARTSTAT=DECLINED;SCHEDULE-AGENT=CLIENT:mailto:bob@customer.example\r\n"), "{out}");
        assert!(out.contains("ORGANIZER;CN=Ann;SCHEDULE-AGENT=CLIENT:mailto:Ann@Example.com\r\n"));
        assert!(out.contains("SCHEDULE-AGENT=CLIENT:mailto:dan@example.com\r\n"));
        assert!(out.contains("DTSTAMP:20260702T000000Z\r\n"));
        let again = parse(&out).expect("event");
        assert_eq!(again.summary, f.summary);
        assert_eq!(again.attendees, f.attendees);
        assert_eq!(again.start, f.start);
        // nothing changed, scheduling as before: the same object
        let same_out = patch(Some(&out), &again, "x", t("2027-01-01T00:00:00Z"), &|_| {
            true
        });
        assert!(same(&out, &same_out), "{same_out}");
    }

    #[test]
    fn patch_writes_a_new_task_and_a_new_event_and_scheduling_by_address() {
        let task = Fields {
            kind: ItemKind::Todo,
            summary: Some("Send offer; today".into()),
            due: Some(t("2026-05-01T15:00:00Z")),
            status: Some("planned".into()),
            ..Fields::default()
        };
        let now = t("2026-04-01T00:00:00Z");
        let out = patch(None, &task, "sb-1", now, &|_| true);
        assert!(
            out.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"),
            "{out}"
        );
        assert!(out.contains("BEGIN:VTODO\r\nUID:sb-1\r\n"));
        assert!(out.contains("SUMMARY:Send offer\\; today\r\n"));
        assert!(out.contains("DUE:20260501T150000Z\r\n"));
        assert!(!out.contains("STATUS"), "free-text status is not written");
        let back = parse(&out).expect("task");
        assert_eq!(back.due, task.due);
        assert_eq!(back.uid.as_deref(), Some("sb-1"));
        let event = Fields {
            kind: ItemKind::Event,
            summary: Some("Offsite".into()),
            start: Some(t("2026-05-04T00:00:00Z")),
            end: Some(t("2026-05-06T00:00:00Z")),
            all_day: true,
            organizer: Some("ann@example.com".into()),
            attendees: vec![("x@customer.example".into(), "none".into())],
            ..Fields::default()
        };
        let external = |a: &str| a.ends_with("@example.com");
        let out = patch(None, &event, "sb-2", now, &external);
        assert!(
            out.contains("DTSTART;VALUE=DATE:20260504\r\nDTEND;VALUE=DATE:20260506\r\n"),
            "{out}"
        );
        assert!(out.contains("ORGANIZER;SCHEDULE-AGENT=CLIENT:mailto:ann@example.com\r\n"));
        assert!(
            out.contains("ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=FALSE:mailto:x@customer.example\r\n"),
            "{out}"
        );
        let back = parse(&out).expect("event");
        assert!(back.all_day);
        assert_eq!(back.end, event.end);
    }

    #[test]
    fn a_changed_time_is_written_in_its_described_iana_zone() {
        let text = "BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:z\r\nDTSTART;TZID=Europe/Berlin:20260110T100000\r\nDTEND;TZID=Europe/Berlin:20260110T110000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let mut f = parse(text).expect("event");
        f.start = Some(t("2026-01-10T10:00:00Z"));
        f.end = Some(t("2026-01-10T11:00:00Z"));
        let out = patch(Some(text), &f, "z", t("2026-01-01T00:00:00Z"), &|_| false);
        assert!(
            out.contains("DTSTART;TZID=Europe/Berlin:20260110T110000\r\n"),
            "{out}"
        );
        assert!(out.contains("DTEND;TZID=Europe/Berlin:20260110T120000\r\n"));
    }

    #[test]
    fn helpers_read_durations_weekdays_and_offsets() {
        assert_eq!(parse_duration("-PT15M"), Some(Duration::minutes(-15)));
        assert_eq!(parse_duration("P1W2D"), Some(Duration::days(9)));
        assert_eq!(parse_duration("P1H"), None);
        assert_eq!(
            nth_weekday(2026, 3, chrono::Weekday::Sun, -1),
            NaiveDate::from_ymd_opt(2026, 3, 29)
        );
        assert_eq!(
            nth_weekday(2026, 11, chrono::Weekday::Sun, 1),
            NaiveDate::from_ymd_opt(2026, 11, 1)
        );
        assert_eq!(parse_offset("-0530"), Some(-19_800));
        assert_eq!(parse_offset("x"), None);
    }
}
