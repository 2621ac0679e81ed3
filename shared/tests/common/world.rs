//! The end-to-end world: a provider sandbox, a fresh database and template-shaped
//! queues, the ingest handlers, the `process-webhook-events` consumer fed by several
//! concurrent pollers (as Lambda runs several batches at once) and the outbox relay.
#![allow(dead_code)]

use df_sandbox::SandboxConfig;
use df_shared::domain::EventKind;
use df_shared::ingest::webhook_aloware::{self as aloware, AlowareWebhookAuth};
use df_shared::ingest::webhook_ghl::{self as ghl, GhlWebhookAuth};
use df_shared::ingest::webhook_texting::{self as texting, TextingWebhookAuth};
use df_shared::pipeline::deployment::CONSUMER_TIMEOUT;
use df_shared::pipeline::relay::Relay;
use df_shared::pipeline::{sqs_event, Consumer, Router};
use df_shared::sync::texting_to_ghl::TextingRouter;
use df_shared::sync::WebhookRouter;
use serde_json::{json, Value};

use super::*;

/// Concurrent pollers of the e2e harness (Lambda's concurrent batches).
pub const POLLERS: usize = 4;

/// The consumer's settings against a database, a queue and a sandbox; `extra` wins.
pub fn consumer_settings(
    database_url: &str,
    queue_url: &str,
    sandbox: &str,
    policy: &str,
    extra: &[(&str, &str)],
) -> df_shared::lambda::Settings {
    let (ghl, aloware) = (format!("{sandbox}/ghl"), format!("{sandbox}/aloware"));
    let texting = format!("{sandbox}/texting");
    let base = [
        ("DATABASE_URL", database_url),
        ("WEBHOOK_EVENTS_QUEUE_URL", queue_url),
        ("GHL_BASE_URL", ghl.as_str()),
        ("GHL_API_KEY", "sandbox-ghl-token"),
        ("GHL_LOCATION_ID", "sandbox-location"),
        ("ALOWARE_BASE_URL", aloware.as_str()),
        ("ALOWARE_API_TOKEN", "sandbox-aloware-token"),
        ("TEXTING_BASE_URL", texting.as_str()),
        ("TEXTING_API_KEY", "sandbox-texting-key"),
        ("CONTACT_SOURCE_OF_TRUTH", policy),
        ("RETRY_BASE_SECONDS", "0"),
        ("STORE_RETRY_SECONDS", "1"),
        ("CREDENTIAL_RETRY_SECONDS", "1"),
        ("OUTAGE_PROBE_SECONDS", "1"),
        ("DB_POOL_SIZE", "6"),
    ];
    let mut pairs: Vec<(&str, &str)> = base.to_vec();
    for (k, v) in extra {
        pairs.retain(|(name, _)| name != k);
        pairs.push((k, v));
    }
    df_shared::lambda::Settings::from_pairs(pairs)
}

pub struct World {
    pub stack: Stack,
    pub sandbox: String,
    pub consumer: Consumer<WebhookRouter>,
    pub aloware: AlowareWebhookAuth,
    pub ghl: GhlWebhookAuth,
    pub http: reqwest::Client,
    pub extra: Vec<(String, String)>,
    /// Provider requests made while the consumer started (resolving GHL custom field
    /// ids): `requests()` counts what the events cost, after these.
    pub startup_requests: usize,
    /// The texting inbox and `process-texting-events`, in worlds that text.
    pub texting: Option<TextingSide>,
}

/// The texting half of a world: its own queue (template-shaped), ingest and consumer.
pub struct TextingSide {
    pub queue_url: String,
    pub dlq_url: String,
    pub ingest: df_shared::ingest::Ingest,
    pub auth: TextingWebhookAuth,
    pub consumer: Consumer<TextingRouter>,
}

/// One SQS receive + invocation + deletes of `queue_url`, as Lambda's trigger does it.
/// Returns the number of messages received.
pub async fn poll_queue<R: Router>(
    consumer: &Consumer<R>,
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> usize {
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let messages = out.messages.unwrap_or_default();
    if messages.is_empty() {
        return 0;
    }
    let deadline = tokio::time::Instant::now() + CONSUMER_TIMEOUT;
    let response = consumer
        .handle(
            sqs_event::from_received(&messages, "arn:aws:sqs:us-east-1:123456789012:test.fifo"),
            deadline,
        )
        .await;
    let failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    for m in &messages {
        if !failed.iter().any(|f| Some(f.as_str()) == m.message_id()) {
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    messages.len()
}

impl World {
    pub async fn new() -> World {
        Self::with(SandboxConfig::default(), &[]).await
    }

    /// A sandbox with a 1 s rate window: a 429's back-off (one window) stays short.
    pub async fn with_short_rate_window() -> World {
        Self::with(
            SandboxConfig {
                ghl_rate_window: std::time::Duration::from_secs(1),
                ..SandboxConfig::default()
            },
            &[],
        )
        .await
    }

    pub async fn with(sandbox_config: SandboxConfig, extra: &[(&str, &str)]) -> World {
        let sandbox = df_sandbox::spawn(sandbox_config).await;
        let stack = Stack::new().await;
        Self::on(stack, sandbox, extra).await
    }

    /// A world whose functions reach Postgres at `database_url` (e.g. through a proxy).
    pub async fn on(stack: Stack, sandbox: String, extra: &[(&str, &str)]) -> World {
        let settings = consumer_settings(
            &stack.database_url,
            &stack.queue_url,
            &sandbox,
            "merge",
            extra,
        );
        let consumer = df_shared::app::webhook_consumer(&settings)
            .await
            .expect("consumer");
        let startup_requests = reqwest::get(format!("{sandbox}/_sandbox/requests"))
            .await
            .unwrap()
            .json::<Vec<Value>>()
            .await
            .unwrap()
            .len();
        World {
            texting: None,
            startup_requests,
            aloware: AlowareWebhookAuth::from_settings(&stack.settings).unwrap(),
            ghl: GhlWebhookAuth::from_settings(&stack.settings).unwrap(),
            stack,
            sandbox,
            consumer,
            http: reqwest::Client::new(),
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// A world with the texting inbox and consumer too; `extra` configures both
    /// consumers (e.g. `GHL_CONVERSATION_PROVIDER_ID`, `TEXTING_STOP_CONFIRMATION`).
    pub async fn with_texting(sandbox_config: SandboxConfig, extra: &[(&str, &str)]) -> World {
        let sandbox = df_sandbox::spawn(sandbox_config).await;
        let stack = Stack::new().await;
        let queues = fresh_queues().await;
        let mut all: Vec<(&str, &str)> = extra.to_vec();
        all.push(("TEXTING_EVENTS_QUEUE_URL", queues.url.as_str()));
        let mut w = Self::on(stack, sandbox, &all).await;
        let settings = consumer_settings(
            &w.stack.database_url,
            &w.stack.queue_url,
            &w.sandbox,
            "merge",
            &all,
        );
        let consumer = df_shared::app::texting_consumer(&settings)
            .await
            .expect("texting consumer");
        let ingest = df_shared::ingest::Ingest {
            kind: EventKind::Texting,
            queue: settings
                .queue("TEXTING_EVENTS_QUEUE_URL")
                .await
                .expect("texting queue"),
            ..w.stack.ingest.clone()
        };
        w.texting = Some(TextingSide {
            queue_url: queues.url,
            dlq_url: queues.dlq,
            auth: TextingWebhookAuth::from_settings(&w.stack.settings).unwrap(),
            ingest,
            consumer,
        });
        w
    }

    fn texting_side(&self) -> &TextingSide {
        self.texting.as_ref().expect("a world built with_texting")
    }

    pub async fn texting_webhook(&self, body: Value) -> Value {
        let (status, answer) = self.try_texting_webhook(&body).await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    pub async fn try_texting_webhook(&self, body: &Value) -> (u16, Value) {
        let side = self.texting_side();
        let req = post(
            "/api/webhooks/texting",
            &[("x-texting-secret", TEXTING_SECRET)],
            body.to_string(),
        );
        json_of(texting::handle(&side.ingest, &side.auth, req).await).await
    }

    /// Texting events as `(event_type, status, reason or error)`, oldest first.
    pub async fn texting_statuses(&self) -> Vec<(String, String, Option<String>)> {
        let client = db_client(&self.stack.database_url).await;
        client
            .query("SELECT event_type, status, coalesce(skip_reason, error_message) FROM texting_webhook_events ORDER BY received_at", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    pub async fn aloware_webhook(&self, body: Value) -> Value {
        let (status, answer) = self.try_aloware_webhook(&body).await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    pub async fn try_aloware_webhook(&self, body: &Value) -> (u16, Value) {
        let req = post(
            "/api/webhooks/aloware",
            &[("authorization", &basic_auth())],
            body.to_string(),
        );
        json_of(aloware::handle(&self.stack.ingest, &self.aloware, req).await).await
    }

    pub async fn ghl_workflow_webhook(&self, body: Value) -> Value {
        let (status, answer) = self.try_ghl_workflow_webhook(&body).await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    pub async fn try_ghl_workflow_webhook(&self, body: &Value) -> (u16, Value) {
        let req = post(
            "/api/webhooks/ghl",
            &[("x-df-workflow-secret", WORKFLOW_SECRET)],
            body.to_string(),
        );
        json_of(ghl::handle(&self.stack.ingest, &self.ghl, req).await).await
    }

    /// One SQS receive + invocation + deletes of the webhook queue.
    pub async fn poll_once(&self, sqs: &aws_sdk_sqs::Client) -> usize {
        poll_queue(&self.consumer, sqs, &self.stack.queue_url).await
    }

    /// Act as Lambda's SQS trigger, with `POLLERS` concurrent batches (several message
    /// groups in flight at once, as in production), and as the relay's schedule (more
    /// often than once a minute), until every stored event is finished.
    pub async fn drain_queue(&self) {
        self.drain_for(std::time::Duration::from_secs(600)).await;
        self.assert_no_violations().await;
    }

    /// Every request the middleware sent conformed to the providers' contracts (GHL's
    /// OpenAPI, Aloware's documented paths).
    pub async fn assert_no_violations(&self) {
        let violations = self.sandbox_get("violations").await;
        assert_eq!(
            violations,
            json!([]),
            "requests the real providers would refuse"
        );
        // Upsert `tags` replace all of a contact's tags: never sent in one.
        for r in self.requests("ghl").await {
            if r["path"] == "/ghl/contacts/upsert" {
                assert!(
                    r["body"].get("tags").is_none(),
                    "tags in an upsert: {}",
                    r["body"]
                );
            }
        }
    }

    /// The GHL custom field id of `key` in the sandbox's location.
    pub async fn custom_field_id(&self, key: &str) -> String {
        self.state().await["ghl"]["custom_fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["fieldKey"] == format!("contact.{key}"))
            .and_then(|f| f["id"].as_str())
            .unwrap_or_else(|| panic!("no custom field {key}"))
            .to_string()
    }

    pub async fn drain_for(&self, limit: std::time::Duration) {
        let stop = std::sync::atomic::AtomicBool::new(false);
        let idle = std::sync::atomic::AtomicUsize::new(0);
        let deadline = std::time::Instant::now() + limit;
        let watcher = async {
            while std::time::Instant::now() < deadline {
                let mut settled =
                    depth(&self.stack.queue_url).await == 0 && self.unfinished().await == 0;
                if let Some(side) = &self.texting {
                    settled &= depth(&side.queue_url).await == 0;
                }
                if settled && idle.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 3 {
                    stop.store(true, std::sync::atomic::Ordering::SeqCst);
                    return;
                }
                if !settled {
                    idle.store(0, std::sync::atomic::Ordering::SeqCst);
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            panic!(
                "events still unfinished after {limit:?}: {:?} {:?}",
                self.statuses().await,
                if self.texting.is_some() {
                    self.texting_statuses().await
                } else {
                    vec![]
                }
            );
        };
        futures::join!(watcher, self.run_consumers_until(&stop));
    }

    /// Pollers and the relay, until `stop` is set.
    pub async fn run_consumers_until(&self, stop: &std::sync::atomic::AtomicBool) {
        let sqs = sqs().await;
        let relay = self.relay().await;
        let poller = || async {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if self.poll_once(&sqs).await == 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        };
        let texting_poller = || async {
            let Some(side) = &self.texting else { return };
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if poll_queue(&side.consumer, &sqs, &side.queue_url).await == 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        };
        let relaying = async {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                relay.run_once().await;
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
        };
        futures::join!(
            futures::future::join_all((0..POLLERS).map(|_| poller())),
            futures::future::join_all((0..POLLERS).map(|_| texting_poller())),
            relaying
        );
    }

    /// Rows not yet finished (pending, error, processing).
    pub async fn unfinished(&self) -> i64 {
        // Texting rows only where a texting consumer runs.
        let sql = if self.texting.is_some() {
            "SELECT (SELECT count(*) FROM webhook_events WHERE status IN ('pending', 'error', 'processing'))
                + (SELECT count(*) FROM texting_webhook_events WHERE status IN ('pending', 'error', 'processing'))"
        } else {
            "SELECT count(*) FROM webhook_events WHERE status IN ('pending', 'error', 'processing')"
        };
        db_client(&self.stack.database_url)
            .await
            .query_one(sql, &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or(1)
    }

    /// The outbox relay (`sweep-pending`) over this world's queues and their DLQs, with
    /// the probes of paused providers, as the composition root builds it.
    pub async fn relay(&self) -> Relay {
        let mut extra: Vec<(&str, &str)> = self
            .extra
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Some(dlq) = &self.stack.dlq_url {
            extra.push(("WEBHOOK_EVENTS_DLQ_URL", dlq));
        }
        if let Some(side) = &self.texting {
            extra.push(("TEXTING_EVENTS_QUEUE_URL", &side.queue_url));
            extra.push(("TEXTING_EVENTS_DLQ_URL", &side.dlq_url));
        }
        let settings = consumer_settings(
            &self.stack.database_url,
            &self.stack.queue_url,
            &self.sandbox,
            "merge",
            &extra,
        );
        df_shared::app::relay(&settings).await.unwrap()
    }

    pub async fn sandbox_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}/_sandbox/{path}", self.sandbox))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn sandbox_post(&self, path: &str, body: Value) {
        let r = self
            .http
            .post(format!("{}/_sandbox/{path}", self.sandbox))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    pub async fn state(&self) -> Value {
        self.sandbox_get("state").await
    }

    /// Provider requests since start-up.
    pub async fn requests(&self, provider: &str) -> Vec<Value> {
        self.sandbox_get("requests")
            .await
            .as_array()
            .unwrap()
            .iter()
            .skip(self.startup_requests)
            .filter(|r| r["provider"] == provider)
            .cloned()
            .collect()
    }

    pub async fn notes(&self) -> Vec<Value> {
        self.state().await["ghl"]["notes"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|n| n.as_array().unwrap().clone())
            .collect()
    }

    pub async fn statuses(&self) -> Vec<(String, String, Option<String>)> {
        let client = db_client(&self.stack.database_url).await;
        client
            .query("SELECT event_type, status, coalesce(skip_reason, error_message) FROM webhook_events ORDER BY received_at", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }
}

/// Signs GHL marketplace webhooks with a test key the world's GHL config trusts.
pub struct GhlSigner(ed25519_dalek::SigningKey);

impl GhlSigner {
    pub fn install(w: &mut World) -> GhlSigner {
        use ed25519_dalek::pkcs8::EncodePublicKey as _;
        let key = ed25519_dalek::SigningKey::generate(&mut rand::thread_rng());
        let pem = key
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        let keys = df_shared::auth::GhlKeys::from_pem(
            &pem,
            df_shared::auth::ghl_signature::PUBLISHED_RSA_PEM,
        )
        .unwrap();
        w.ghl = GhlWebhookAuth::new(keys, Some(WORKFLOW_SECRET.into()));
        GhlSigner(key)
    }

    pub async fn send(&self, w: &World, body: Value) {
        use base64::Engine;
        use ed25519_dalek::Signer as _;
        let text = body.to_string();
        let sig = base64::engine::general_purpose::STANDARD
            .encode(self.0.sign(text.as_bytes()).to_bytes());
        let req = post("/api/webhooks/ghl", &[("x-ghl-signature", &sig)], text);
        let (status, answer) = json_of(ghl::handle(&w.stack.ingest, &w.ghl, req).await).await;
        assert_eq!(status, 200, "{answer}");
    }
}
