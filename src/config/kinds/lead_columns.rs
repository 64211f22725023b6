//! The `Lead` object's columns and their types (LI-03): what a mapped value or a constant is
//! converted to before it is stored.
//!
//! The seed's lead object types its columns "String", "Decimal", "Boolean", "Date/Time" and
//! "Lookup", and a string column has a length (the not-mapped macro needs an unlimited one).
//! SPEC gives a lead `columns: {column: value}` without types, so the catalogue below is
//! Switchboard's: the lead columns the seed's forms and examples use, named as the seed's
//! `Lead` object names them. A column not listed is a custom one: its value is kept as the
//! form or the constant gives it (text, number or boolean), and it may take the not-mapped text.
//! Pure: no I/O.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

/// A lead column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Text of at most this many characters (`None`: unlimited).
    String(Option<usize>),
    /// A decimal number.
    Decimal,
    /// True or false.
    Boolean,
    /// A date, or a date and time (stored as RFC 3339, UTC).
    DateTime,
    /// A value of a directory (stored as its display text).
    Lookup,
}

/// Length of the seed's short string columns.
const SHORT: Option<usize> = Some(250);

/// The lead columns Switchboard knows, with their types.
pub const COLUMNS: &[(&str, ColumnType)] = &[
    ("Notes", ColumnType::String(None)),
    ("Commentary", ColumnType::String(None)),
    ("Contact", ColumnType::String(SHORT)),
    ("Account", ColumnType::String(SHORT)),
    ("Email", ColumnType::String(SHORT)),
    ("MobilePhone", ColumnType::String(SHORT)),
    ("BusinessPhone", ColumnType::String(SHORT)),
    ("JobTitle", ColumnType::String(SHORT)),
    ("Website", ColumnType::String(SHORT)),
    ("Address", ColumnType::String(SHORT)),
    ("Zip", ColumnType::String(Some(50))),
    ("Country", ColumnType::Lookup),
    ("City", ColumnType::Lookup),
    ("Industry", ColumnType::Lookup),
    ("LeadSource", ColumnType::Lookup),
    ("Event", ColumnType::Lookup),
    ("Budget", ColumnType::Decimal),
    ("EmployeesNumber", ColumnType::Decimal),
    ("DecisionDate", ColumnType::DateTime),
    ("DoNotUseEmail", ColumnType::Boolean),
    ("DoNotUseSms", ColumnType::Boolean),
    ("DoNotUseCall", ColumnType::Boolean),
];

/// The type of `column`; `None` for a custom column (untyped).
pub fn column_type(column: &str) -> Option<ColumnType> {
    COLUMNS
        .iter()
        .find(|(name, _)| *name == column)
        .map(|(_, t)| *t)
}

/// Whether `column` can hold the not-mapped text: an unlimited text column, or a custom one.
pub fn takes_unlimited_text(column: &str) -> bool {
    matches!(column_type(column), None | Some(ColumnType::String(None)))
}

/// `value` as `column` stores it, or why it cannot be (the caller keeps the raw value in the
/// not-mapped text, LI-04: nothing is dropped).
pub fn convert(column: &str, value: &Value) -> Result<Value, String> {
    let text = || match value {
        Value::String(s) => s.trim().to_owned(),
        other => other.to_string(),
    };
    let Some(kind) = column_type(column) else {
        return Ok(value.clone());
    };
    match kind {
        ColumnType::String(_) | ColumnType::Lookup if value.is_null() => Ok(Value::Null),
        kind @ (ColumnType::String(_) | ColumnType::Lookup) => {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            // A lookup is stored as its display text, which a directory keeps short.
            let limit = match kind {
                ColumnType::String(limit) => limit,
                _ => SHORT,
            };
            match limit {
                Some(max) if text.chars().count() > max => Err(format!(
                    "{} characters is over column `{column}`'s {max}",
                    text.chars().count()
                )),
                _ => Ok(Value::String(text)),
            }
        }
        ColumnType::Decimal => match value {
            Value::Number(_) => Ok(value.clone()),
            _ => {
                let t = text().replace([' ', '\u{a0}'], "");
                // A decimal comma, as forms in many locales write it, when there is no point.
                let t = if t.contains('.') {
                    t
                } else {
                    t.replace(',', ".")
                };
                t.parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| format!("{value} is not a number (column `{column}`)"))
            }
        },
        ColumnType::Boolean => match value {
            Value::Bool(_) => Ok(value.clone()),
            _ => match text().to_lowercase().as_str() {
                "true" | "yes" | "y" | "1" | "on" | "да" => Ok(Value::Bool(true)),
                "false" | "no" | "n" | "0" | "off" | "нет" => Ok(Value::Bool(false)),
                _ => Err(format!("{value} is not true or false (column `{column}`)")),
            },
        },
        ColumnType::DateTime => {
            let parsed = match value {
                // LinkedIn's own timestamps are epoch milliseconds.
                Value::Number(n) => n.as_i64().and_then(DateTime::<Utc>::from_timestamp_millis),
                _ => {
                    let t = text();
                    DateTime::parse_from_rfc3339(&t)
                        .map(|d| d.with_timezone(&Utc))
                        .ok()
                        .or_else(|| {
                            NaiveDate::parse_from_str(&t, "%Y-%m-%d")
                                .ok()
                                .and_then(|d| d.and_hms_opt(0, 0, 0))
                                .map(|d| d.and_utc())
                        })
                }
            };
            parsed
                .map(|d| Value::String(d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
                .ok_or_else(|| format!("{value} is not a date (column `{column}`)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // REQ: LI-03 (values converted as the column's type needs)
    #[test]
    fn values_convert_to_their_columns_type_or_say_why_not() {
        assert_eq!(convert("Budget", &json!("12 500,50")), Ok(json!(12500.5)));
        assert_eq!(convert("Budget", &json!(7)), Ok(json!(7)));
        assert!(convert("Budget", &json!("a lot")).is_err());
        assert_eq!(convert("DoNotUseSms", &json!("Yes")), Ok(json!(true)));
        assert_eq!(convert("DoNotUseSms", &json!(false)), Ok(json!(false)));
        assert!(convert("DoNotUseSms", &json!("maybe")).is_err());
        assert_eq!(
            convert("DecisionDate", &json!("2026-03-01")),
            Ok(json!("2026-03-01T00:00:00Z"))
        );
        assert_eq!(
            convert("DecisionDate", &json!(1_772_323_200_000_i64)),
            Ok(json!("2026-03-01T00:00:00Z"))
        );
        assert!(convert("DecisionDate", &json!("next week")).is_err());
        assert_eq!(
            convert("Event", &json!("Low-Code Days")),
            Ok(json!("Low-Code Days"))
        );
        assert_eq!(convert("JobTitle", &json!("CTO")), Ok(json!("CTO")));
        let long = "x".repeat(251);
        assert!(convert("JobTitle", &json!(long)).is_err());
        // A custom column keeps the value as given, at any length.
        assert_eq!(convert("Favourite colour", &json!(long)), Ok(json!(long)));
        assert_eq!(convert("Favourite colour", &json!(true)), Ok(json!(true)));
    }

    #[test]
    fn the_not_mapped_text_needs_an_unlimited_or_custom_column() {
        assert!(takes_unlimited_text("Notes"));
        assert!(takes_unlimited_text("UsrDescription"));
        assert!(!takes_unlimited_text("JobTitle"));
        assert!(!takes_unlimited_text("Budget"));
        assert_eq!(column_type("Zip"), Some(ColumnType::String(Some(50))));
    }
}
