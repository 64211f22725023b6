//! [`ApiError`]: the one error type of the HTTP edge.
//!
//! Client mistakes get a specific status and `{"error": {"code", "message"}}`; our own failures
//! get a generic 500 whose details go only to the log. A message is capped at [`MAX_MESSAGE`]
//! bytes and never names our types, however much of the client's input it quotes; answers that
//! come from axum's own rejections (a bad query string, a wrong method) are given the same
//! shape by [`json_errors`].

use std::sync::LazyLock;

use axum::Json;
use axum::extract::Request;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::server::BodyTimeout;

/// The longest error message, in bytes; longer ones are cut (at a character boundary) and end
/// in an ellipsis.
pub const MAX_MESSAGE: usize = 512;

/// The `Retry-After` (seconds) of a 503 given because the state file's disk is full.
pub const STORAGE_FULL_RETRY_AFTER: u32 = 30;

/// An error answered to an API client.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u32>,
}

/// The body of every error answer: `{"error": {"code", "message"}}`.
#[derive(Serialize, schemars::JsonSchema)]
#[schemars(rename = "Error")]
pub(crate) struct Body<'a> {
    error: Detail<'a>,
}

/// What went wrong.
#[derive(Serialize, schemars::JsonSchema)]
#[schemars(rename = "ErrorDetail")]
pub(crate) struct Detail<'a> {
    /// A stable code (`bad-request`, `unauthorized`, `forbidden`, `not-found`, `stale`,
    /// `storage-full`, ...): compare this, not the message.
    code: &'a str,
    /// What a person reads; at most 512 bytes.
    message: &'a str,
}

impl ApiError {
    /// An error with a given status, stable code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: tidy(&message.into()),
            retry_after: None,
        }
    }
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", message)
    }
    /// 401; the response carries `WWW-Authenticate: Bearer`.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    /// 403.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, "not-found", message)
    }
    /// 409 with a specific code.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    /// 413.
    pub fn payload_too_large(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", message)
    }
    /// 422.
    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", message)
    }
    /// 429.
    pub fn too_many_requests(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "too-many-requests", message)
    }
    /// 408: the body did not arrive in time; the connection is closed after the answer.
    pub fn request_timeout() -> ApiError {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            BodyTimeout.to_string(),
        )
    }
    /// The answer to a request body that could not be read: 408 when it came too slowly,
    /// otherwise 400 naming `what`.
    pub fn unreadable_body(error: &(dyn std::error::Error + 'static)) -> ApiError {
        if BodyTimeout::caused(error) {
            Self::request_timeout()
        } else {
            Self::bad_request(format!("the body could not be read: {error}"))
        }
    }
    /// The answer to a refused JSON body: 413 beyond the size limit, 408 when it came too
    /// slowly, 415 without a JSON content type, otherwise 400 with what is wrong.
    pub fn json_body(rejection: JsonRejection) -> ApiError {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                Self::payload_too_large("the body is larger than this endpoint accepts")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "expected `Content-Type: application/json`",
            ),
            _ if BodyTimeout::caused(&rejection) => Self::request_timeout(),
            _ => Self::bad_request(rejection.body_text()),
        }
    }
    /// 500: logs `detail` and answers a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error while serving a request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the daemon's log",
        )
    }
    /// 503 `storage-full` with `Retry-After`: the state file's disk is full and nothing of the
    /// request was stored, so it must not be acknowledged. The episode is logged by the caller
    /// that hit it ([`crate::telemetry::disk`]), not per request.
    pub fn storage_full(message: impl Into<String>) -> ApiError {
        let mut error = Self::new(StatusCode::SERVICE_UNAVAILABLE, "storage-full", message);
        error.retry_after = Some(STORAGE_FULL_RETRY_AFTER);
        error
    }
    /// A store error: [`ApiError::storage_full`] when the disk is full, otherwise
    /// [`ApiError::internal`].
    pub fn store(error: crate::store::StoreError) -> ApiError {
        if error.is_disk_full() {
            crate::telemetry::disk::full(&error);
            Self::storage_full("the state file's disk is full; nothing was stored, retry later")
        } else {
            Self::internal(error)
        }
    }
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Detail {
                code: self.code,
                message: &self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// `message` capped at [`MAX_MESSAGE`] bytes, with serde's names of our types (`struct
/// InboundBody`) said in words.
fn tidy(message: &str) -> String {
    static TYPE_NAME: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"\b(struct|enum) [A-Z][A-Za-z0-9_]*").expect("the pattern is valid")
    });
    let worded = TYPE_NAME.replace_all(message, |c: &regex::Captures<'_>| {
        if &c[1] == "struct" {
            "an object"
        } else {
            "one of the allowed values"
        }
    });
    cap(&worded, MAX_MESSAGE)
}

/// `text` cut to at most `max` bytes at a character boundary, with an ellipsis when cut.
pub fn cap(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Marks a response whose non-JSON error body is meant for a person (the OAuth callback's
/// page), so [`json_errors`] leaves it alone.
#[derive(Debug, Clone, Copy)]
pub struct PlainPage;

/// The stable code of an error status that no handler chose (axum's rejections, 405).
fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad-request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not-found",
        405 => "method-not-allowed",
        408 => "request-timeout",
        409 => "conflict",
        413 => "payload-too-large",
        414 => "uri-too-long",
        415 => "unsupported-media-type",
        422 => "unprocessable",
        429 => "too-many-requests",
        431 => "header-too-large",
        503 => "unavailable",
        s if s >= 500 => "internal",
        _ => "error",
    }
}

/// Middleware: an error answer that is not JSON (axum's plain-text rejections of a query
/// string or path, the empty 405) becomes `{"error": {"code", "message"}}` with the same status
/// and headers; its text, capped, is the message.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if status.as_u16() < 400 || json || response.extensions().get::<PlainPage>().is_some() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Rejection texts are short; the cap only keeps a surprise from being buffered whole.
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_lowercase()
    } else {
        text
    };
    let answer = ApiError::new(status, code_of(status), message).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, answer.into_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_capped_and_name_no_types() {
        let long = ApiError::bad_request(format!("unknown status {:?}", "é".repeat(100_000)));
        assert!(long.message.len() <= MAX_MESSAGE, "{}", long.message.len());
        assert!(long.message.ends_with('…'));
        let typed = ApiError::bad_request(
            "invalid type: string \"x\", expected struct InboundBody at line 1 column 3",
        );
        assert_eq!(
            typed.message,
            "invalid type: string \"x\", expected an object at line 1 column 3"
        );
        assert_eq!(cap("short", 10), "short");
    }

    #[tokio::test]
    async fn unauthorized_has_the_json_body_and_the_challenge() {
        let response = ApiError::unauthorized("no token").into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": "unauthorized", "message": "no token"}})
        );
    }
}
