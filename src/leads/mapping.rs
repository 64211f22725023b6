//! A LinkedIn form response → a lead's columns (LI-02..LI-04) and the person it names.
//!
//! The response (`leadFormResponses`) answers by `questionId`; the form (`leadForms`) names
//! its questions: a profile field by `predefinedField` (`FIRST_NAME`, `EMAIL`, ...), a custom
//! question, checkbox (`consents`) or hidden field (`hiddenFields`) by the name given in the
//! form editor. A column takes a `field` (by either name), a `constant`, or
//! `macro: not_mapped_fields` — every value no column took, one `name: value` a line. When no
//! column names the macro, that text goes to `Notes` (LI-04). Pure: no I/O.

use serde_json::{Map, Value};

use crate::config::kinds::lead_columns;
use crate::config::kinds::{ColumnMapping, MappingMacro};
use crate::store::records::{normalize_email, normalize_phone};

/// The column that takes the not-mapped values when no column names the macro.
pub const NOTES: &str = "Notes";

/// One value of a form response.
#[derive(Debug, Clone, PartialEq)]
pub struct FormValue {
    /// Its name: the predefined field (`EMAIL`) or the name given in the form editor.
    pub name: String,
    /// The question's editor name, when it differs from `name`.
    pub alias: Option<String>,
    /// The value: text, or a boolean for a checkbox.
    pub value: Value,
}

impl FormValue {
    fn is(&self, field: &str) -> bool {
        self.name == field || self.alias.as_deref() == Some(field)
    }
}

/// The values of `response` named by `form`, in the form's order (answers to questions the
/// form does not name are kept under `question_{id}`; none is dropped).
pub fn values(response: &Value, form: &Value) -> Vec<FormValue> {
    let content = &form["content"];
    let questions = content["questions"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    let answers = response["formResponse"]["answers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for answer in &answers {
        let id = &answer["questionId"];
        let question = questions.iter().find(|q| &q["questionId"] == id);
        let editor = question.and_then(|q| q["name"].as_str()).map(str::to_owned);
        let predefined = question
            .and_then(|q| q["predefinedField"].as_str())
            .map(str::to_owned);
        let (name, alias) = match (predefined, editor) {
            (Some(p), e) => (p.clone(), e.filter(|e| *e != p)),
            (None, Some(e)) => (e, None),
            (None, None) => (format!("question_{id}"), None),
        };
        let details = &answer["answerDetails"];
        let value = if let Some(text) = details["textQuestionAnswer"]["answer"].as_str() {
            Value::String(text.to_owned())
        } else if let Some(chosen) = details["multipleChoiceAnswer"]["options"].as_array() {
            let options = question
                .map(|q| &q["questionDetails"]["multipleChoiceQuestionDetails"]["options"])
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let texts: Vec<String> = chosen
                .iter()
                .map(|c| {
                    options
                        .iter()
                        .find(|o| &o["id"] == c)
                        .and_then(|o| o["text"].as_str())
                        .map_or_else(|| c.to_string(), str::to_owned)
                })
                .collect();
            Value::String(texts.join(", "))
        } else {
            details.clone()
        };
        out.push(FormValue { name, alias, value });
    }
    let consents = content["consents"].as_array().cloned().unwrap_or_default();
    for consent in response["formResponse"]["consentResponses"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let id = &consent["consentId"];
        let name = consents
            .iter()
            .find(|c| &c["consentId"] == id)
            .and_then(|c| c["name"].as_str())
            .map_or_else(|| format!("consent_{id}"), str::to_owned);
        out.push(FormValue {
            name,
            alias: None,
            value: Value::Bool(consent["accepted"].as_bool().unwrap_or(false)),
        });
    }
    for hidden in content["hiddenFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        if let (Some(name), Some(value)) = (hidden["name"].as_str(), hidden.get("value")) {
            out.push(FormValue {
                name: name.to_owned(),
                alias: None,
                value: value.clone(),
            });
        }
    }
    out
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The lead's columns from `values` by `mapping`, each value converted to its column's type
/// (`config::kinds::lead_columns`). A value that cannot convert is not stored in its column:
/// it joins the not-mapped text (`name: value`) and is named in the second list, for the
/// integration log — never dropped (LI-03, LI-04).
pub fn columns(
    mapping: &[ColumnMapping],
    values: &[FormValue],
) -> (Map<String, Value>, Vec<String>) {
    let mut out = Map::new();
    let mut macro_column = None;
    let mut unconverted: Vec<&FormValue> = Vec::new();
    let mut problems = Vec::new();
    for col in mapping {
        if let Some(field) = &col.field {
            if let Some(v) = values.iter().find(|v| v.is(field)) {
                match lead_columns::convert(&col.column, &v.value) {
                    Ok(converted) => {
                        out.insert(col.column.clone(), converted);
                    }
                    Err(why) => {
                        problems.push(format!("{}: {why}; kept in the not-mapped text", v.name));
                        unconverted.push(v);
                    }
                }
            }
        } else if let Some(constant) = &col.constant {
            // `validate` checked the constant converts; a raw one is kept if it somehow does not.
            let converted =
                lead_columns::convert(&col.column, constant).unwrap_or_else(|_| constant.clone());
            out.insert(col.column.clone(), converted);
        } else if col.macro_ == Some(MappingMacro::NotMappedFields) {
            macro_column = Some(col.column.clone());
        }
    }
    let rest: Vec<String> = values
        .iter()
        .filter(|v| {
            unconverted.iter().any(|u| std::ptr::eq(*u, *v))
                || !mapping
                    .iter()
                    .any(|c| c.field.as_deref().is_some_and(|f| v.is(f)))
        })
        .map(|v| format!("{}: {}", v.name, text(&v.value)))
        .collect();
    if !rest.is_empty() {
        let column = macro_column.unwrap_or_else(|| NOTES.to_owned());
        let joined = rest.join("\n");
        // A column that already took a value keeps it; the rest follows on its own lines.
        let merged = match out.get(&column) {
            Some(existing) => format!("{}\n{joined}", text(existing)),
            None => joined,
        };
        out.insert(column, Value::String(merged));
    }
    (out, problems)
}

/// The person a response names: name, addresses and phones (normalised).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Person {
    /// First and last name.
    pub name: Option<String>,
    /// `EMAIL`, `WORK_EMAIL`.
    pub emails: Vec<String>,
    /// `PHONE_NUMBER`, `WORK_PHONE_NUMBER`.
    pub phones: Vec<String>,
}

/// The person of `values`.
pub fn person(values: &[FormValue]) -> Person {
    let get = |field: &str| {
        values
            .iter()
            .find(|v| v.name == field)
            .and_then(|v| v.value.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let name = [get("FIRST_NAME"), get("LAST_NAME")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let mut emails: Vec<String> = ["EMAIL", "WORK_EMAIL"]
        .into_iter()
        .filter_map(get)
        .filter_map(normalize_email)
        .collect();
    emails.dedup();
    let mut phones: Vec<String> = ["PHONE_NUMBER", "WORK_PHONE_NUMBER"]
        .into_iter()
        .filter_map(get)
        .filter_map(normalize_phone)
        .collect();
    phones.dedup();
    Person {
        name: (!name.is_empty()).then_some(name),
        emails,
        phones,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn col(column: &str, field: Option<&str>, constant: Option<Value>, m: bool) -> ColumnMapping {
        ColumnMapping {
            column: column.into(),
            field: field.map(Into::into),
            constant,
            macro_: m.then_some(MappingMacro::NotMappedFields),
        }
    }

    fn sample() -> Vec<FormValue> {
        let form = json!({"content": {
            "questions": [
                {"questionId": 1, "name": "firstName", "predefinedField": "FIRST_NAME"},
                {"questionId": 2, "name": "email", "predefinedField": "EMAIL"},
                {"questionId": 3, "name": "product_interest", "questionDetails": {
                    "multipleChoiceQuestionDetails": {"options": [
                        {"id": 1, "text": "CRM"}, {"id": 2, "text": "BPM"}]}}},
                {"questionId": 4, "name": "company", "predefinedField": "COMPANY_NAME"}
            ],
            "consents": [{"consentId": 9, "name": "marketing_consent"}],
            "hiddenFields": [{"name": "utm_campaign", "value": "spring"}]
        }});
        let response = json!({"formResponse": {
            "answers": [
                {"questionId": 1, "answerDetails": {"textQuestionAnswer": {"answer": "Ada"}}},
                {"questionId": 2, "answerDetails": {"textQuestionAnswer": {"answer": "Ada@Example.com"}}},
                {"questionId": 3, "answerDetails": {"multipleChoiceAnswer": {"options": [1, 2]}}},
                {"questionId": 4, "answerDetails": {"textQuestionAnswer": {"answer": "Lovelace Ltd"}}}
            ],
            "consentResponses": [{"consentId": 9, "accepted": true}]
        }});
        values(&response, &form)
    }

    // REQ: LI-02
    #[test]
    fn profile_fields_questions_checkboxes_and_hidden_fields_are_named() {
        let v = sample();
        let names: Vec<&str> = v.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "FIRST_NAME",
                "EMAIL",
                "product_interest",
                "COMPANY_NAME",
                "marketing_consent",
                "utm_campaign"
            ]
        );
        assert_eq!(v[2].value, json!("CRM, BPM"));
        assert_eq!(v[4].value, json!(true));
    }

    // REQ: LI-03, LI-04
    #[test]
    fn fields_constants_and_the_macro_fill_columns() {
        let v = sample();
        let mapping = [
            col("GivenName", Some("FIRST_NAME"), None, false),
            col("Email", Some("email"), None, false),
            col("UsrConsent", Some("marketing_consent"), None, false),
            col("Event", None, Some(json!("Low-Code Days")), false),
            col("UsrBudget", None, Some(json!(false)), false),
            col("UsrDescription", None, None, true),
        ];
        let (c, unconverted) = columns(&mapping, &v);
        assert!(unconverted.is_empty(), "{unconverted:?}");
        assert_eq!(c["GivenName"], json!("Ada"));
        assert_eq!(
            c["Email"],
            json!("Ada@Example.com"),
            "by the editor name too"
        );
        assert_eq!(c["UsrConsent"], json!(true));
        assert_eq!(c["Event"], json!("Low-Code Days"));
        assert_eq!(c["UsrBudget"], json!(false));
        assert_eq!(
            c["UsrDescription"],
            json!("product_interest: CRM, BPM\nCOMPANY_NAME: Lovelace Ltd\nutm_campaign: spring")
        );
        assert!(!c.contains_key("Notes"));
    }

    // REQ: LI-04
    #[test]
    fn without_the_macro_the_rest_goes_to_notes() {
        let (c, _) = columns(
            &[col("GivenName", Some("FIRST_NAME"), None, false)],
            &sample(),
        );
        let notes = c["Notes"].as_str().unwrap();
        assert!(notes.starts_with("EMAIL: Ada@Example.com\n"), "{notes}");
        assert!(notes.contains("marketing_consent: true"), "{notes}");
    }

    // REQ: LI-03 (converted as the column needs; a value that cannot convert is kept and named)
    #[test]
    fn values_are_typed_by_their_column_and_a_misfit_goes_to_the_not_mapped_text() {
        let v = sample();
        let mapping = [
            col("Contact", Some("FIRST_NAME"), None, false),
            // "CRM, BPM" is no number: not stored in Budget, kept in Notes, and named.
            col("Budget", Some("product_interest"), None, false),
            col("DoNotUseEmail", Some("marketing_consent"), None, false),
            col("DecisionDate", None, Some(json!("2026-06-30")), false),
        ];
        let (c, unconverted) = columns(&mapping, &v);
        assert_eq!(c["Contact"], json!("Ada"));
        assert_eq!(c["DoNotUseEmail"], json!(true));
        assert_eq!(c["DecisionDate"], json!("2026-06-30T00:00:00Z"));
        assert!(!c.contains_key("Budget"), "{c:?}");
        assert_eq!(unconverted.len(), 1);
        assert!(
            unconverted[0].starts_with("product_interest: "),
            "{unconverted:?}"
        );
        let notes = c["Notes"].as_str().expect("notes");
        assert!(notes.contains("product_interest: CRM, BPM"), "{notes}");
    }

    #[test]
    fn the_person_is_named_by_profile_fields() {
        let p = person(&sample());
        assert_eq!(p.name.as_deref(), Some("Ada"));
        assert_eq!(p.emails, ["ada@example.com"]);
        assert!(p.phones.is_empty());
    }
}
