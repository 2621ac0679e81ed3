//! Postgres connection pool. Connections open lazily: a cold start never waits on the
//! database, and a database outage surfaces per request (→ 429/503), not as a crash.
use std::{str::FromStr, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

#[derive(Debug, thiserror::Error)]
pub enum DbConfigError {
    #[error("DATABASE_URL is not a valid Postgres URL: {0}")]
    BadUrl(tokio_postgres::Error),
    #[error("could not build the connection pool: {0}")]
    Pool(String),
}

pub fn pool(database_url: &str, max_size: usize) -> Result<Pool, DbConfigError> {
    let mut config =
        tokio_postgres::Config::from_str(database_url).map_err(DbConfigError::BadUrl)?;
    config.connect_timeout(Duration::from_secs(3));
    config.keepalives_idle(Duration::from_secs(30));
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(Duration::from_secs(4)))
        .wait_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| DbConfigError::Pool(e.to_string()))
}

/// `SELECT 1` within a deadline; the health check's database probe.
pub async fn ping(pool: &Pool) -> Result<(), String> {
    let probe = async {
        let client = pool.get().await.map_err(|e| e.to_string())?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(5), probe)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}
