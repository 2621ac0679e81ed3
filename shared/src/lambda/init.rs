//! Building a function's clients on first use rather than before the runtime starts.
//! A cold start that cannot load its configuration (Secrets Manager throttled, a bad
//! key PEM) would otherwise crash, and API Gateway would answer 5xx, which neither GHL
//! nor Aloware retries. Here the request is answered with the provider's retry status
//! instead, and the next request tries again.
use std::future::Future;

use lambda_http::{http::StatusCode, Body, Request, Response};
use tokio::sync::OnceCell;

use super::http::error_response;
use super::ConfigError;

/// Serve HTTP requests with a context built by `build` on the first request that
/// succeeds in building it; until then every request gets `failure` (429 for GHL's
/// webhook, 503 for the others) with a JSON body.
pub async fn serve_http<T, Build, BuildFut, Handle, HandleFut>(
    failure: StatusCode,
    build: Build,
    handle: Handle,
) -> Result<(), lambda_http::Error>
where
    T: Send + Sync + 'static,
    Build: Fn() -> BuildFut + Send + Sync + 'static,
    BuildFut: Future<Output = Result<T, ConfigError>> + Send,
    Handle: Fn(&'static T, Request) -> HandleFut + Send + Sync + 'static,
    HandleFut: Future<Output = Response<Body>> + Send + 'static,
{
    // The context lives as long as the process: a leaked cell gives `'static` borrows.
    let cell: &'static OnceCell<T> = Box::leak(Box::new(OnceCell::new()));
    let build = &*Box::leak(Box::new(build));
    let handle = &*Box::leak(Box::new(handle));
    lambda_http::run(lambda_http::service_fn(move |req: Request| async move {
        Ok::<_, std::convert::Infallible>(respond(cell, failure, build, handle, req).await)
    }))
    .await
}

/// One request: build the context if it is not built yet, then handle the request, or
/// answer `failure` when the context cannot be built.
pub async fn respond<T, Build, BuildFut, Handle, HandleFut>(
    cell: &'static OnceCell<T>,
    failure: StatusCode,
    build: &Build,
    handle: &Handle,
    mut req: Request,
) -> Response<Body>
where
    Build: Fn() -> BuildFut,
    BuildFut: Future<Output = Result<T, ConfigError>>,
    Handle: Fn(&'static T, Request) -> HandleFut,
    HandleFut: Future<Output = Response<Body>>,
{
    // Before the cold start's work: the request's time budget includes it.
    if req.extensions().get::<super::http::Arrival>().is_none() {
        req.extensions_mut().insert(super::http::Arrival::now());
    }
    // Boxed: a context's construction (secret read, SDK clients) is a deep future.
    match cell.get_or_try_init(|| Box::pin(build())).await {
        Ok(ctx) => handle(ctx, req).await,
        Err(err) => {
            tracing::error!(error = %err, "function not configured; answering {failure}");
            error_response(failure, "not_configured", "service not ready; retry later")
        }
    }
}

/// The same for non-HTTP triggers (SQS, schedules): a configuration failure fails the
/// invocation (SQS then redelivers, EventBridge retries) instead of the process.
pub async fn context<T, Build, BuildFut>(
    cell: &OnceCell<T>,
    build: Build,
) -> Result<&T, ConfigError>
where
    Build: FnOnce() -> BuildFut,
    BuildFut: Future<Output = Result<T, ConfigError>>,
{
    let built = cell.get_or_try_init(|| Box::pin(build())).await;
    if let Err(err) = &built {
        tracing::error!(error = %err, "function not configured");
    }
    built
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn an_unconfigured_function_answers_its_retry_status_then_recovers() {
        static CELL: OnceCell<&'static str> = OnceCell::const_new();
        let tries = AtomicUsize::new(0);
        let build = || {
            let n = tries.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(ConfigError::Missing("DATABASE_URL"))
                } else {
                    Ok("ready")
                }
            }
        };
        let handle = |ctx: &'static &'static str, _req: Request| async move {
            crate::lambda::http::json_response(StatusCode::OK, &serde_json::json!({"ctx": ctx}))
        };
        let req = || Request::new(Body::Empty);
        let first = respond(&CELL, StatusCode::TOO_MANY_REQUESTS, &build, &handle, req()).await;
        assert_eq!(first.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(matches!(first.body(), Body::Text(t) if t.contains("not_configured")));
        let second = respond(&CELL, StatusCode::TOO_MANY_REQUESTS, &build, &handle, req()).await;
        assert_eq!(
            second.status(),
            StatusCode::OK,
            "the next request configures it"
        );
        assert_eq!(tries.load(Ordering::SeqCst), 2);
    }
}
