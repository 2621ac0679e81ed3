//! The Postgres token bucket (SPEC §5) against a real database: shared by concurrent
//! takers, and never waited on past the attempt's deadline.
mod common;

use std::time::Duration;

use common::*;
use df_shared::adapters::rate_budget::{BudgetError, RateBudget, ATTEMPT_DEADLINE};

async fn budget(per_10s: u32, limit: u32) -> RateBudget {
    let url = fresh_database().await;
    let pool = settings(&url, DEAD_QUEUE_URL).pool().unwrap();
    RateBudget::new(pool, per_10s, limit, Duration::from_secs(10))
}

#[tokio::test]
async fn concurrent_takers_never_exceed_the_burst_plus_the_refill() {
    // 10 per 10 s under a limit of 15: a burst of 5, then 1 per second.
    let b = budget(10, 15).await;
    let started = tokio::time::Instant::now();
    let takes = (0..8).map(|_| {
        let b = b.clone();
        async move { b.acquire("t:k").await.map(|_| started.elapsed()) }
    });
    let mut at: Vec<Duration> = futures::future::join_all(takes)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    at.sort();
    assert!(
        at[4] < Duration::from_millis(900),
        "the burst is immediate: {at:?}"
    );
    assert!(
        at[7] >= Duration::from_millis(2500),
        "the rest wait for the refill: {at:?}"
    );
}

#[tokio::test]
async fn a_wait_never_runs_past_the_attempts_deadline() {
    let b = budget(1, 2).await;
    b.acquire("t:d").await.unwrap();
    // Empty now; the next token is 10 s away, the attempt has 4 s left.
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_secs(4);
    let result = ATTEMPT_DEADLINE.scope(deadline, b.acquire("t:d")).await;
    assert!(
        matches!(result, Err(BudgetError::Exhausted(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "gave up at once instead of waiting into the deadline: {:?}",
        started.elapsed()
    );
}
