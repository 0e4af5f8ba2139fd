//! The one error type of every server function, and its HTTP status.
//!
//! On the wire it is `{"error": "<message>", "code": "<kind>"}` with a real
//! status code (401, 403, 404, 400, 429, 500), set in exactly one place:
//! [`AppError::status_code`], applied when the error is serialized.

#[cfg(feature = "ssr")]
use leptos::prelude::*;
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(into = "ErrorBody", from = "ErrorBody")]
pub enum AppError {
    #[error("sign in to continue")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("too many attempts; try again in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    /// A limit on what one user may hold open (streams); the message says which.
    #[error("{0}")]
    Limited(String),
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    /// The HTTP status of each error: the single mapping.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Unauthorized => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::BadRequest(_) => 400,
            Self::TooManyRequests { .. } | Self::Limited(_) => 429,
            Self::Internal(_) => 500,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::BadRequest(_) => "bad_request",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::Limited(_) => "limited",
            Self::Internal(_) => "internal",
        }
    }

    /// Logs the cause and returns an error that reveals nothing of it.
    #[cfg(feature = "ssr")]
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "server function failed");
        Self::Internal("internal error; the server log has the details".to_owned())
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(message) | ServerFnErrorErr::MissingArg(message) => {
                Self::BadRequest(format!("invalid arguments: {message}"))
            }
            ServerFnErrorErr::Request(message) => {
                Self::Internal(format!("could not reach the server: {message}"))
            }
            other => Self::Internal(other.to_string()),
        }
    }

    fn ser(&self) -> leptos::server_fn::Bytes {
        // Errors are serialized exactly when they become a response, so this is
        // where the status code is set (otherwise every error would be a 500).
        #[cfg(feature = "ssr")]
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(
                http::StatusCode::from_u16(self.status_code())
                    .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
            );
            if let Self::TooManyRequests { retry_after_secs } = self {
                response.insert_header(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from(*retry_after_secs),
                );
            }
        }
        let body = ErrorBody::from(self.clone());
        serde_json::to_vec(&body).unwrap_or_default().into()
    }
}

/// The same error as an answer of a plain axum route (the export, the live
/// stream): the status and body a server function would give.
#[cfg(feature = "ssr")]
impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        let status = http::StatusCode::from_u16(self.status_code())
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = match &self {
            Self::TooManyRequests { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        let mut response = (status, axum::Json(ErrorBody::from(self))).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        response
    }
}

/// The JSON shape of an error.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ErrorBody {
    error: String,
    code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after_secs: Option<u64>,
}

impl From<AppError> for ErrorBody {
    fn from(err: AppError) -> Self {
        let retry_after_secs = match err {
            AppError::TooManyRequests { retry_after_secs } => Some(retry_after_secs),
            _ => None,
        };
        Self {
            error: err.to_string(),
            code: err.code().to_owned(),
            retry_after_secs,
        }
    }
}

impl From<ErrorBody> for AppError {
    fn from(body: ErrorBody) -> Self {
        match body.code.as_str() {
            "unauthorized" => Self::Unauthorized,
            "forbidden" => Self::Forbidden(body.error),
            "not_found" => Self::NotFound(body.error),
            "bad_request" => Self::BadRequest(body.error),
            "limited" => Self::Limited(body.error),
            "too_many_requests" => Self::TooManyRequests {
                retry_after_secs: body.retry_after_secs.unwrap_or(60),
            },
            _ => Self::Internal(body.error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_round_trip_through_their_json_body() {
        for err in [
            AppError::Unauthorized,
            AppError::Forbidden("admins only".into()),
            AppError::NotFound("no callback 1".into()),
            AppError::BadRequest("bad".into()),
            AppError::TooManyRequests {
                retry_after_secs: 7,
            },
            AppError::Limited("at most 10 streams".into()),
            AppError::Internal("x".into()),
        ] {
            let json = serde_json::to_string(&err).unwrap();
            assert!(json.contains("\"error\":"), "{json}");
            assert_eq!(serde_json::from_str::<AppError>(&json).unwrap(), err);
        }
    }

    #[test]
    fn argument_decoding_failures_are_bad_requests() {
        let err =
            AppError::from_server_fn_error(ServerFnErrorErr::Args("missing field `id`".into()));
        assert_eq!(err.status_code(), 400);
    }
}
