//! What every admin route shares (SPEC §8): the `X-DF-ADMIN-SECRET` check (constant
//! time), JSON errors, and query parameters.
use lambda_http::{http::StatusCode, Body, Request, RequestExt, Response};
use serde_json::Value;

use crate::auth::secret::secret_eq;
use crate::lambda::http::{error_response, header, json_response};
use crate::providers::ProviderError;

pub const ADMIN_SECRET_HEADER: &str = "x-df-admin-secret";
pub const JOBS_SECRET_HEADER: &str = "x-df-jobs-secret";

/// A request an admin route refuses: answered as `{"error": code, "message": ...}`.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_parameter",
            message: message.into(),
        }
    }

    pub fn store_unavailable() -> Self {
        Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "store_unavailable",
            message: "the database did not answer; retry".into(),
        }
    }

    /// A provider failed the operator's request (502); details stay in the log.
    pub fn provider(e: ProviderError) -> Self {
        tracing::warn!(error = %e, "admin: provider call failed");
        Refusal {
            status: StatusCode::BAD_GATEWAY,
            code: "provider_error",
            message: format!("{} did not answer as expected; retry", e.provider),
        }
    }

    pub fn into_response(self) -> Response<Body> {
        error_response(self.status, self.code, self.message)
    }
}

/// A route's answer: `status` with the JSON body, or the refusal.
pub fn respond(status: StatusCode, result: Result<Value, Refusal>) -> Response<Body> {
    match result {
        Ok(body) => json_response(status, &body),
        Err(r) => r.into_response(),
    }
}

/// Refused (401) unless header `name` carries `secret` (compared in constant time).
fn require_secret(req: &Request, name: &str, secret: &str) -> Result<(), Refusal> {
    match header(req, name) {
        Some(given) if secret_eq(given.as_bytes(), secret.as_bytes()) => Ok(()),
        _ => Err(Refusal {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: format!("missing or wrong {}", name.to_uppercase()),
        }),
    }
}

/// Refused (401) unless the request carries the admin secret; then (400) when a query
/// parameter holds a NUL character, which no Postgres text can hold.
pub fn authorize(req: &Request, secret: &str) -> Result<(), Refusal> {
    require_secret(req, ADMIN_SECRET_HEADER, secret)?;
    no_nul(req)
}

/// Refused (401) unless the request carries the jobs secret.
pub fn authorize_jobs(req: &Request, secret: &str) -> Result<(), Refusal> {
    require_secret(req, JOBS_SECRET_HEADER, secret)?;
    no_nul(req)
}

fn no_nul(req: &Request) -> Result<(), Refusal> {
    let params = req.query_string_parameters_ref();
    let bad = params.is_some_and(|q| q.iter().any(|(k, v)| k.contains('\0') || v.contains('\0')))
        || req.uri().path().contains("%00");
    if bad {
        return Err(Refusal::bad_request(
            "query parameters may not hold NUL characters",
        ));
    }
    Ok(())
}

/// Refused (405) unless the request uses `method`.
pub fn require_method(req: &Request, method: &str) -> Result<(), Refusal> {
    if req.method().as_str() == method {
        return Ok(());
    }
    Err(Refusal {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: format!("use {method}"),
    })
}

/// A query parameter, trimmed; `None` when absent or empty.
pub fn query(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// `includeBody=true` (personal data unmasked).
pub fn include_body(req: &Request) -> Result<bool, Refusal> {
    match query(req, "includeBody").as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(Refusal::bad_request("includeBody must be true or false")),
    }
}
