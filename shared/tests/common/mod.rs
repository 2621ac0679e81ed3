//! Test support: a fresh migrated database per test, real FIFO queues in the SQS
//! emulator with the template's settings (visibility timeout, DLQ and redrive policy),
//! a TCP proxy that can cut Postgres off, and request builders. `scripts/test` provides
//! Postgres and the emulator.
#![allow(dead_code)]

pub mod world;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_sqs::types::QueueAttributeName;
use df_shared::adapters::{migrations, queue};
use df_shared::domain::EventKind;
use df_shared::ingest::Ingest;
use df_shared::lambda::Settings;
use df_shared::pipeline::deployment::{MAX_RECEIVE_COUNT, QUEUE_VISIBILITY_TIMEOUT};
use lambda_http::{Body, Request};
use uuid::Uuid;

pub const ALOWARE_USER: &str = "aloware-test";
pub const ALOWARE_PASS: &str = "test-pass";
pub const WORKFLOW_SECRET: &str = "test-workflow-secret";
pub const TEXTING_SECRET: &str = "test-texting-secret";
/// Nothing listens on port 1: connections are refused at once.
pub const DEAD_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:1/nothing";
pub const DEAD_QUEUE_URL: &str = "http://127.0.0.1:1/123456789012/nothing.fifo";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The server's maintenance database; each test creates its own database there.
pub fn admin_url() -> String {
    std::env::var("DF_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The role the functions connect as (migration V0010), as deployed.
pub const APP_ROLE: &str = "df_app";

/// A new database with every migration applied (as the owner, the server's admin
/// user). Returns the URL the functions use: the application role's, which may only
/// do what a deployed function may do.
pub async fn fresh_database() -> String {
    let owner = fresh_owned_database().await;
    app_url(&owner)
}

/// A new migrated database; its owner's URL.
pub async fn fresh_owned_database() -> String {
    let admin = admin_url();
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b)
        .expect("DF_TEST_DATABASE_URL has a database path");
    let url = format!("{base}/df_test_{}", Uuid::new_v4().simple());
    migrations::ensure_database(&url).await.unwrap_or_else(|e| {
        panic!("cannot reach Postgres at {admin} ({e}); run scripts/test, which starts it")
    });
    migrations::run_url(&url).await.expect("migrations apply");
    // Locally the application role logs in by itself (trust auth).
    // Roles are the server's: tests migrating at once race on it, so retry.
    let admin_client = db_client(&admin).await;
    for attempt in 0.. {
        let can_login: bool = admin_client
            .query_one(
                "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1",
                &[&APP_ROLE],
            )
            .await
            .expect("the application role exists after the migrations")
            .get(0);
        if can_login {
            break;
        }
        match admin_client
            .batch_execute(&format!("ALTER ROLE {APP_ROLE} LOGIN"))
            .await
        {
            Ok(()) => break,
            Err(e) if attempt < 20 => {
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot let {APP_ROLE} log in: {e}"),
        }
    }
    url
}

/// The same database as `url`, as the application role.
pub fn app_url(url: &str) -> String {
    with_user(url, APP_ROLE)
}

/// The same database as `url`, as its owner (the server's admin user): what tests use
/// to arrange what no function may do (DDL, the registry by hand).
pub fn owner_url(url: &str) -> String {
    let admin: tokio_postgres::Config = admin_url().parse().expect("admin URL");
    with_user(url, admin.get_user().unwrap_or("postgres"))
}

fn with_user(url: &str, user: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let host = rest.split_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{user}@{host}")
}

pub async fn db_client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

fn require_emulator() {
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        panic!(
            "AWS_ENDPOINT_URL is not set: run scripts/test, which starts the SQS emulator (moto)"
        );
    }
}

pub async fn sqs() -> aws_sdk_sqs::Client {
    require_emulator();
    aws_sdk_sqs::Client::new(&queue::aws_config().await)
}

/// A FIFO queue as the template declares it, with its dead-letter queue.
#[derive(Debug, Clone)]
pub struct Queues {
    pub url: String,
    pub dlq: String,
}

/// A new FIFO queue and DLQ in the emulator, with the template's visibility timeout
/// and redrive policy (`pipeline::deployment`, checked against template.yaml).
pub async fn fresh_queues() -> Queues {
    let client = sqs().await;
    let name = Uuid::new_v4().simple().to_string();
    let dlq = client
        .create_queue()
        .queue_name(format!("t-{name}-dlq.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("create the DLQ in the emulator")
        .queue_url()
        .unwrap()
        .to_string();
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let url = client
        .create_queue()
        .queue_name(format!("t-{name}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            QUEUE_VISIBILITY_TIMEOUT.as_secs().to_string(),
        )
        .attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT.to_string()})
                .to_string(),
        )
        .send()
        .await
        .expect("create the queue in the emulator")
        .queue_url()
        .unwrap()
        .to_string();
    Queues { url, dlq }
}

/// Delete `queues.url` (and every message in it) and create it again under the same
/// name, with the template's settings: what an operator's `sam delete` + redeploy, or a
/// mistaken console click, does to a live queue.
pub async fn recreate_queue(queues: &Queues) {
    let client = sqs().await;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&queues.dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let name = queues.url.rsplit('/').next().unwrap().to_string();
    client
        .delete_queue()
        .queue_url(&queues.url)
        .send()
        .await
        .expect("delete the queue");
    // SQS answers the old creation time for a moment: a new one is at least a second on.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let url = client
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            QUEUE_VISIBILITY_TIMEOUT.as_secs().to_string(),
        )
        .attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT.to_string()})
                .to_string(),
        )
        .send()
        .await
        .expect("recreate the queue")
        .queue_url()
        .unwrap()
        .to_string();
    assert_eq!(url, queues.url, "the same URL");
}

pub async fn fresh_queue() -> String {
    fresh_queues().await.url
}

/// Every message on a queue (receives until empty; makes them invisible).
pub async fn drain(queue_url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let client = sqs().await;
    let mut all = Vec::new();
    loop {
        let out = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive");
        let batch = out.messages.unwrap_or_default();
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

/// Visible plus in-flight messages.
pub async fn depth(queue_url: &str) -> i64 {
    let (visible, in_flight) = queue::EventQueue::new(&queue::aws_config().await, queue_url)
        .depth()
        .await
        .expect("queue depth");
    visible + in_flight
}

pub fn settings(database_url: &str, queue_url: &str) -> Settings {
    Settings::from_pairs([
        ("DATABASE_URL", database_url),
        ("WEBHOOK_EVENTS_QUEUE_URL", queue_url),
        ("TEXTING_EVENTS_QUEUE_URL", queue_url),
        ("ALOWARE_WEBHOOK_BASIC_USER", ALOWARE_USER),
        ("ALOWARE_WEBHOOK_BASIC_PASS", ALOWARE_PASS),
        ("GHL_WORKFLOW_WEBHOOK_SECRET", WORKFLOW_SECRET),
        ("TEXTING_WEBHOOK_SECRET", TEXTING_SECRET),
        // Tests run many stacks at once against one server (max_connections 100).
        ("DB_POOL_SIZE", "8"),
    ])
}

/// An ingest context on a fresh database and queue.
pub struct Stack {
    pub database_url: String,
    pub queue_url: String,
    pub dlq_url: Option<String>,
    pub settings: Settings,
    pub ingest: Ingest,
}

impl Stack {
    pub async fn new() -> Stack {
        let queues = fresh_queues().await;
        let mut stack = Self::with(&fresh_database().await, &queues.url).await;
        stack.dlq_url = Some(queues.dlq);
        stack
    }

    pub async fn with(database_url: &str, queue_url: &str) -> Stack {
        require_emulator();
        let settings = settings(database_url, queue_url);
        let ingest = df_shared::ingest::Ingest::from_settings(&settings, EventKind::Webhook)
            .await
            .expect("ingest context");
        Stack {
            database_url: database_url.into(),
            queue_url: queue_url.into(),
            dlq_url: None,
            settings,
            ingest,
        }
    }

    pub async fn count(&self, sql: &str) -> i64 {
        db_client(&self.database_url)
            .await
            .query_one(sql, &[])
            .await
            .expect(sql)
            .get(0)
    }
}

pub fn fixture(name: &str) -> Request {
    let path = repo_root().join("infra/events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn post(path: &str, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri(format!("http://localhost{path}"));
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(Body::Binary(body.into())).unwrap()
}

pub fn basic_auth() -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ALOWARE_USER}:{ALOWARE_PASS}"))
    )
}

pub async fn json_of(resp: lambda_http::Response<Body>) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let body = match resp.body() {
        Body::Text(t) => t.clone().into_bytes(),
        Body::Binary(b) => b.clone(),
        _ => Vec::new(),
    };
    let value =
        serde_json::from_slice(&body).unwrap_or_else(|_| panic!("response is not JSON: {body:?}"));
    (status, value)
}

/// `../shared/reference` beside this checkout. Absent (a clone of the project alone)
/// the tests that read it skip with a message — except under `CI=true`, where its
/// absence is a failure: CI has it, and a vacuous pass would hide a regression.
pub fn reference_dir() -> Option<PathBuf> {
    let dir = std::env::var("DF_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("../shared/reference"));
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!(
            "{} is missing under CI=true: the provider reference data is required",
            dir.display()
        );
    }
    None
}

/// A TCP proxy in front of Postgres that can be cut: every connection through it is
/// dropped and new ones are refused until it is restored. A real outage, as the
/// functions see one (connection resets, then refusals), without stopping the server
/// other tests use. It can also hang instead: a database that swallows packets (a
/// failover, a partition) — every open connection stops forwarding for good, without a
/// reset, and new ones are accepted but never answered until it is restored.
pub struct PgProxy {
    pub url: String,
    up: Arc<AtomicBool>,
    hung: Arc<AtomicBool>,
    freeze: Arc<tokio::sync::watch::Sender<u64>>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl PgProxy {
    pub async fn start(target_url: &str) -> PgProxy {
        let config: tokio_postgres::Config = target_url.parse().expect("database URL");
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".to_string(),
        };
        let target = format!("{host}:{port}");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let hung = Arc::new(AtomicBool::new(false));
        let (freeze, _) = tokio::sync::watch::channel(0u64);
        let freeze = Arc::new(freeze);
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Default::default();
        let (up2, hung2, freeze2, conns2) = (
            up.clone(),
            hung.clone(),
            freeze.clone(),
            connections.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let hung = hung2.load(Ordering::SeqCst);
                let mut frozen = freeze2.subscribe();
                let task = tokio::spawn(async move {
                    if hung {
                        // Accepted, never answered.
                        std::future::pending::<()>().await;
                    }
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = frozen.changed() => {
                                // Both sockets stay open; nothing moves any more.
                                std::future::pending::<()>().await;
                            }
                        }
                        drop(outbound);
                    }
                    drop(inbound);
                });
                conns2.lock().unwrap().push(task.abort_handle());
            }
        });
        let db = config.get_dbname().unwrap_or("postgres");
        let user = config.get_user().unwrap_or("postgres");
        PgProxy {
            url: format!("postgres://{user}@{addr}/{db}"),
            up,
            hung,
            freeze,
            connections,
        }
    }

    /// The database goes away: open connections break, new ones are refused.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// The database hangs: open connections stop forwarding for good (no reset),
    /// new ones are accepted and never answered.
    pub fn hang(&self) {
        self.hung.store(true, Ordering::SeqCst);
        self.freeze.send_modify(|g| *g += 1);
    }

    /// New connections reach the database again (a hung one stays hung).
    pub fn restore(&self) {
        self.hung.store(false, Ordering::SeqCst);
        self.up.store(true, Ordering::SeqCst);
    }
}
