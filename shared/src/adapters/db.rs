//! Postgres connection pool and typed database errors. Connections open lazily: a cold
//! start never waits on the database, and an outage surfaces per request (→ 429/503),
//! not as a crash. Every connection carries a statement timeout, so a hung statement
//! (a lock, a failover) ends as an error inside the caller's time budget.
use std::{str::FromStr, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;

pub use super::db_tls::{SslMode, TlsSettings};

/// Default statement timeout: well inside the shortest function budget that uses it
/// (the ingest store budget, `ingest::STORE_BUDGET`).
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DbConfigError {
    #[error("DATABASE_URL is not a valid Postgres URL: {0}")]
    BadUrl(tokio_postgres::Error),
    #[error("could not build the connection pool: {0}")]
    Pool(String),
    #[error(transparent)]
    Tls(#[from] super::db_tls::TlsError),
}

/// A database failure, told apart by what the caller should do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// No connection (server down, network, pool exhausted): retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The statement timeout (SQLSTATE 57014) or the caller's budget ran out.
    #[error("database statement timed out")]
    Timeout,
    /// A concurrent writer won (unique violation, serialization failure, deadlock):
    /// retrying sees the winner.
    #[error("database conflict (SQLSTATE {code}): {message}")]
    Conflict { code: String, message: String },
    /// Anything else (bad SQL, bad data): a bug, retrying cannot help.
    #[error("database error (SQLSTATE {code}): {message}")]
    Query { code: String, message: String },
}

impl DbError {
    pub fn retryable(&self) -> bool {
        !matches!(self, DbError::Query { .. })
    }

    pub fn is_unique_violation(&self) -> bool {
        matches!(self, DbError::Conflict { code, .. } if code == SqlState::UNIQUE_VIOLATION.code())
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        let Some(db) = e.as_db_error() else {
            // I/O, a closed connection, a failed TLS handshake: no SQLSTATE.
            return DbError::Unavailable(e.to_string());
        };
        let code = db.code().code().to_string();
        // The server's message names constraints and columns, never parameter values
        // (those are in `detail`, which is not kept).
        let message = db.message().to_string();
        let state = db.code();
        if *state == SqlState::QUERY_CANCELED {
            DbError::Timeout
        } else if [
            SqlState::UNIQUE_VIOLATION,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::LOCK_NOT_AVAILABLE,
        ]
        .contains(state)
        {
            DbError::Conflict { code, message }
        } else if code.starts_with("08")
            || code.starts_with("53")
            || code.starts_with("57P")
            || *state == SqlState::READ_ONLY_SQL_TRANSACTION
        {
            DbError::Unavailable(format!("SQLSTATE {code}: {message}"))
        } else {
            DbError::Query { code, message }
        }
    }
}

impl From<PoolError> for DbError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => e.into(),
            other => DbError::Unavailable(other.to_string()),
        }
    }
}

/// The driver's configuration and TLS connector for a URL: `sslmode` from the URL,
/// else from `tls.mode`, else `prefer`; a statement timeout on every connection.
fn configure(
    database_url: &str,
    tls: &TlsSettings,
    statement_timeout: Duration,
    read_only: bool,
) -> Result<
    (
        tokio_postgres::Config,
        tokio_postgres_rustls::MakeRustlsConnect,
    ),
    DbConfigError,
> {
    let (url, url_mode) = super::db_tls::split_sslmode(database_url)?;
    let mode = url_mode.or(tls.mode).unwrap_or(SslMode::Prefer);
    let (wire, connector) = super::db_tls::connector(mode, tls.ca_pem.as_deref())?;
    let mut config = tokio_postgres::Config::from_str(&url).map_err(DbConfigError::BadUrl)?;
    config.ssl_mode(wire);
    config.connect_timeout(Duration::from_secs(3));
    // A network that swallows packets (a failover, a partition) must close the socket
    // in seconds, not after the kernel's ~15 minutes: unacknowledged data for 10 s, or
    // three unanswered keepalives, ends the connection and the pool drops it.
    config.keepalives_idle(Duration::from_secs(30));
    config.keepalives_interval(Duration::from_secs(5));
    config.keepalives_retries(3);
    config.tcp_user_timeout(Duration::from_secs(10));
    // Sent in the startup packet: no extra round trip per connection.
    let options = format!(
        "{} -c statement_timeout={}{}",
        config.get_options().unwrap_or_default(),
        statement_timeout.as_millis(),
        if read_only {
            " -c default_transaction_read_only=on"
        } else {
            ""
        }
    );
    config.options(options.trim());
    Ok((config, connector))
}

pub fn pool(database_url: &str, max_size: usize, tls: &TlsSettings) -> Result<Pool, DbConfigError> {
    pool_with(database_url, max_size, tls, DEFAULT_STATEMENT_TIMEOUT)
}

pub fn pool_with(
    database_url: &str,
    max_size: usize,
    tls: &TlsSettings,
    statement_timeout: Duration,
) -> Result<Pool, DbConfigError> {
    build_pool(
        configure(database_url, tls, statement_timeout, false)?,
        max_size,
    )
}

/// A pool whose sessions cannot write (`default_transaction_read_only`): for another
/// system's database that this one only reads (Verity's, SPEC §13).
pub fn read_only_pool(
    database_url: &str,
    max_size: usize,
    tls: &TlsSettings,
    statement_timeout: Duration,
) -> Result<Pool, DbConfigError> {
    build_pool(
        configure(database_url, tls, statement_timeout, true)?,
        max_size,
    )
}

fn build_pool(
    (config, connector): (
        tokio_postgres::Config,
        tokio_postgres_rustls::MakeRustlsConnect,
    ),
    max_size: usize,
) -> Result<Pool, DbConfigError> {
    let manager = Manager::from_config(
        config,
        connector,
        ManagerConfig {
            // `Verified` would cost a round trip per checkout (the ingest path makes
            // one); a connection that died while Lambda was frozen fails its statement,
            // which every caller already treats as retryable.
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

/// One pooled connection held for work that must finish by a deadline. Whatever the
/// work's outcome, [`Held::settle`] decides the connection's fate: one whose work did
/// not finish in time, or failed because the connection timed out or broke, is
/// discarded, never handed back — a statement left outstanding on it (a database that
/// hangs rather than refuses) would make every later checkout wait behind it.
pub struct Held {
    client: deadpool_postgres::Client,
    until: tokio::time::Instant,
}

/// Check a connection out within `budget`; the work then has what is left of it.
pub async fn hold(pool: &Pool, budget: Duration) -> Result<Held, DbError> {
    let until = tokio::time::Instant::now() + budget;
    let client = tokio::time::timeout(budget, pool.get())
        .await
        .map_err(|_| DbError::Timeout)??;
    Ok(Held { client, until })
}

impl Held {
    pub fn client(&self) -> &deadpool_postgres::Client {
        &self.client
    }

    pub fn client_mut(&mut self) -> &mut deadpool_postgres::Client {
        &mut self.client
    }

    /// What is left of the budget.
    pub fn left(&self) -> Duration {
        self.until
            .saturating_duration_since(tokio::time::Instant::now())
    }

    /// Give the connection up (its session state is unknown: an open transaction).
    pub fn discard(self) {
        discard(self.client);
    }

    /// The work's outcome under `tokio::time::timeout(self.left(), ...)`.
    pub fn settle<T>(
        self,
        outcome: Result<Result<T, DbError>, tokio::time::error::Elapsed>,
    ) -> Result<T, DbError> {
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                if matches!(e, DbError::Timeout | DbError::Unavailable(_)) {
                    discard(self.client);
                }
                Err(e)
            }
            Err(_) => {
                discard(self.client);
                Err(DbError::Timeout)
            }
        }
    }
}

/// Take a connection out of its pool for good (it closes when dropped here).
pub fn discard(client: deadpool_postgres::Client) {
    drop(deadpool_postgres::Client::take(client));
}

/// One connection outside any pool (migrations), with the same TLS rules; the driver
/// task runs until the client is dropped.
pub async fn connect(
    database_url: &str,
    tls: &TlsSettings,
) -> Result<tokio_postgres::Client, DbError> {
    // Migrations may run longer than a request's statement timeout allows.
    let (config, connector) = configure(database_url, tls, Duration::from_secs(600), false)
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    let (client, connection) = config.connect(connector).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// `SELECT 1` within a deadline; the health check's database probe.
pub async fn ping(pool: &Pool) -> Result<(), DbError> {
    let probe = async {
        let client = pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(5), probe)
        .await
        .unwrap_or(Err(DbError::Timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_violations_are_conflicts() {
        let e = DbError::Conflict {
            code: "23505".into(),
            message: "duplicate key".into(),
        };
        assert!(e.is_unique_violation() && e.retryable());
        let bug = DbError::Query {
            code: "42601".into(),
            message: "syntax error".into(),
        };
        assert!(!bug.retryable());
        assert!(DbError::Unavailable("down".into()).retryable());
        assert!(DbError::Timeout.retryable());
    }

    #[test]
    fn the_statement_timeout_travels_in_the_startup_options() {
        let (config, _) = configure(
            "postgres://u@127.0.0.1:1/x?options=-c%20search_path%3Dp&sslmode=disable",
            &TlsSettings::default(),
            Duration::from_secs(2),
            false,
        )
        .unwrap();
        assert_eq!(
            config.get_options(),
            Some("-c search_path=p -c statement_timeout=2000")
        );
        let (read_only, _) = configure(
            "postgres://u@127.0.0.1:1/x",
            &TlsSettings::default(),
            Duration::from_secs(10),
            true,
        )
        .unwrap();
        assert_eq!(
            read_only.get_options(),
            Some("-c statement_timeout=10000 -c default_transaction_read_only=on")
        );
        assert_eq!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable
        );
    }
}
