//! Provider rate budgets as Postgres token buckets (SPEC §5), shared by every concurrent
//! function. Sizing: a bucket of capacity C refilling at r/s can emit C + r·W requests in
//! any window W, so for GHL's 100 per 10 s the burst is `100 - 10·r` (10 at the default
//! 90 per 10 s) and no sliding window ever sees more than 100.
use std::time::Duration;

use deadpool_postgres::Pool;

use super::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("rate budget store: {0}")]
    Store(#[from] DbError),
    #[error("rate budget for {0} exhausted for longer than the wait limit")]
    Exhausted(String),
}

tokio::task_local! {
    /// When the current attempt must be over (the consumer sets it around a route): a
    /// token that would come later is not waited for. The wait ends as `Exhausted`, a
    /// throttle that spends no attempt, instead of running the attempt into its
    /// deadline, which would.
    pub static ATTEMPT_DEADLINE: tokio::time::Instant;
}

/// Left of the attempt's time after a token: the request itself and the finish.
const AFTER_TOKEN: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct RateBudget {
    pool: Pool,
    capacity: f64,
    refill_per_sec: f64,
    max_wait: Duration,
    /// Buckets this process has already created: the hot path is then one UPDATE.
    created: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

const TAKE: &str = "UPDATE rate_limit_buckets
    SET tokens = LEAST(capacity, tokens + EXTRACT(EPOCH FROM (clock_timestamp() - updated_at))::float8 * refill_per_sec) - 1,
        updated_at = clock_timestamp(), taken = taken + 1
    WHERE bucket_key = $1
      AND LEAST(capacity, tokens + EXTRACT(EPOCH FROM (clock_timestamp() - updated_at))::float8 * refill_per_sec) >= 1
    RETURNING tokens";
const AVAILABLE: &str = "SELECT LEAST(capacity, tokens + EXTRACT(EPOCH FROM (clock_timestamp() - updated_at))::float8 * refill_per_sec), refill_per_sec
    FROM rate_limit_buckets WHERE bucket_key = $1";
const CREATE: &str = "INSERT INTO rate_limit_buckets (bucket_key, tokens, capacity, refill_per_sec)
    VALUES ($1, $2, $2, $3)
    ON CONFLICT (bucket_key) DO UPDATE SET capacity = EXCLUDED.capacity, refill_per_sec = EXCLUDED.refill_per_sec
    WHERE rate_limit_buckets.capacity <> EXCLUDED.capacity OR rate_limit_buckets.refill_per_sec <> EXCLUDED.refill_per_sec";

impl RateBudget {
    /// `per_window` requests per `window` sustained, under a provider limit of `limit`
    /// per the same window.
    pub fn new(pool: Pool, per_window: u32, limit: u32, window: Duration) -> Self {
        let refill_per_sec = per_window as f64 / window.as_secs_f64();
        let capacity = (limit as f64 - refill_per_sec * window.as_secs_f64()).max(1.0);
        RateBudget {
            pool,
            capacity,
            refill_per_sec,
            max_wait: Duration::from_secs(20),
            created: Default::default(),
        }
    }

    fn store_err(e: impl Into<DbError>) -> BudgetError {
        BudgetError::Store(e.into())
    }

    /// Take one token, waiting for it when the bucket is empty. The connection goes
    /// back to the pool while waiting: a wait must not starve the other records.
    pub async fn acquire(&self, key: &str) -> Result<(), BudgetError> {
        let own_limit = tokio::time::Instant::now() + self.max_wait;
        let limit = ATTEMPT_DEADLINE
            .try_with(|d| own_limit.min(d.checked_sub(AFTER_TOKEN).unwrap_or(*d)))
            .unwrap_or(own_limit);
        loop {
            let wait = match self.try_take(key).await? {
                None => return Ok(()),
                Some(wait) => wait,
            };
            if tokio::time::Instant::now() + wait > limit {
                return Err(BudgetError::Exhausted(key.to_string()));
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// One take: `None` when a token was taken, else how long until one refills.
    async fn try_take(&self, key: &str) -> Result<Option<Duration>, BudgetError> {
        let client = self.pool.get().await.map_err(Self::store_err)?;
        if !self.created.lock().unwrap().contains(key) {
            client
                .execute(CREATE, &[&key, &self.capacity, &self.refill_per_sec])
                .await
                .map_err(Self::store_err)?;
            self.created.lock().unwrap().insert(key.to_string());
        }
        let take = client.prepare_cached(TAKE).await.map_err(Self::store_err)?;
        if client
            .query_opt(&take, &[&key])
            .await
            .map_err(Self::store_err)?
            .is_some()
        {
            return Ok(None);
        }
        let available = client
            .prepare_cached(AVAILABLE)
            .await
            .map_err(Self::store_err)?;
        let row = client
            .query_one(&available, &[&key])
            .await
            .map_err(Self::store_err)?;
        let (tokens, rate): (f64, f64) = (row.get(0), row.get(1));
        Ok(Some(Duration::from_secs_f64(
            ((1.0 - tokens) / rate).clamp(0.005, 5.0),
        )))
    }

    /// Tighten the bucket to what the provider says remains (never loosen it).
    pub async fn observe_remaining(&self, key: &str, remaining: f64) -> Result<(), BudgetError> {
        let client = self.pool.get().await.map_err(Self::store_err)?;
        client
            .execute(
                "UPDATE rate_limit_buckets SET tokens = LEAST(tokens, $2) WHERE bucket_key = $1",
                &[&key, &remaining],
            )
            .await
            .map_err(Self::store_err)?;
        Ok(())
    }

    /// After a 429: nothing more for at least `interval`.
    pub async fn penalise(&self, key: &str, interval: Duration) -> Result<(), BudgetError> {
        let client = self.pool.get().await.map_err(Self::store_err)?;
        let debt = -(self.refill_per_sec * interval.as_secs_f64());
        client
            .execute(
                "UPDATE rate_limit_buckets SET tokens = LEAST(tokens, $2), updated_at = clock_timestamp() WHERE bucket_key = $1",
                &[&key, &debt],
            )
            .await
            .map_err(Self::store_err)?;
        Ok(())
    }
}
