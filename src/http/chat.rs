//! The chat engine at the HTTP edge: how its errors are answered.

use axum::http::StatusCode;

use crate::chat::ChatError;

use super::error::ApiError;

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> ApiError {
        match e {
            ChatError::NotFound(m) => ApiError::not_found(m),
            ChatError::Forbidden(m) => ApiError::forbidden(m),
            ChatError::Conflict { code, message } => ApiError::conflict(code, message),
            ChatError::Unavailable(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m)
            }
            ChatError::Store(e) => ApiError::internal(e),
        }
    }
}
