//! `GET /api/admin/agents` (the directory) and `POST /api/admin/agents` (match again):
//! each agent pairs a GHL user with the Aloware user of the same person, matched by
//! email through GHL's users (`GET /users/`) and Aloware's documented `users` endpoint.
//! The roster comes from configuration (`AGENT_DIRECTORY`: a JSON array of
//! `{"email", "displayName"?}`) and the POST body (`{"agents": [...]}`); no names are
//! built in. An agent with no match on a side is kept with a note saying so.
use deadpool_postgres::Pool;
use lambda_http::{http::StatusCode, Body, Request, Response};
use serde_json::{json, Value};

use super::admin::{authorize, respond, Refusal};
use crate::domain::json::id_str;
use crate::domain::pii::mask_email;
use crate::lambda::http::body_bytes;
use crate::lambda::{ConfigError, Settings};
use crate::sync::SyncDeps;

pub struct Agents {
    pub deps: SyncDeps,
    pub admin_secret: String,
    pub configured: Vec<Seed>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Seed {
    pub email: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

fn parse_seeds(v: Value) -> Result<Vec<Seed>, String> {
    let seeds: Vec<Seed> = serde_json::from_value(v).map_err(|e| e.to_string())?;
    if let Some(bad) = seeds.iter().find(|s| !s.email.contains('@')) {
        return Err(format!(
            "{:?} is not an email address",
            mask_email(&bad.email)
        ));
    }
    Ok(seeds)
}

impl Agents {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let raw = s.get_or("AGENT_DIRECTORY", "[]");
        let configured = serde_json::from_str(raw)
            .map_err(|e| e.to_string())
            .and_then(parse_seeds)
            .map_err(|reason| ConfigError::Invalid {
                name: "AGENT_DIRECTORY",
                reason,
            })?;
        Ok(Agents {
            deps: SyncDeps::from_settings(s)?,
            admin_secret: s.require("DF_ADMIN_SECRET")?.to_string(),
            configured,
        })
    }

    fn pool(&self) -> &Pool {
        &self.deps.pool
    }
}

pub async fn handle(ctx: &Agents, req: Request) -> Response<Body> {
    let result = async {
        authorize(&req, &ctx.admin_secret)?;
        match req.method().as_str() {
            "GET" => directory(ctx.pool()).await,
            "POST" => rematch(ctx, &req).await,
            _ => Err(Refusal {
                status: StatusCode::METHOD_NOT_ALLOWED,
                code: "method_not_allowed",
                message: "use GET or POST".into(),
            }),
        }
    };
    respond(StatusCode::OK, result.await)
}

async fn directory(pool: &Pool) -> Result<Value, Refusal> {
    let client = pool.get().await.map_err(|_| Refusal::store_unavailable())?;
    let rows = client
        .query(
            "SELECT agent_key, display_name, email, ghl_user_id, aloware_user_id, is_active,
                    match_notes, updated_at
             FROM agent_directory ORDER BY display_name, agent_key",
            &[],
        )
        .await
        .map_err(|_| Refusal::store_unavailable())?;
    let agents: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({"agentKey": r.get::<_, String>(0), "displayName": r.get::<_, String>(1),
                "email": r.get::<_, Option<String>>(2), "ghlUserId": r.get::<_, Option<String>>(3),
                "alowareUserId": r.get::<_, Option<String>>(4), "isActive": r.get::<_, bool>(5),
                "notes": r.get::<_, Value>(6),
                "updatedAt": r.get::<_, chrono::DateTime<chrono::Utc>>(7)})
        })
        .collect();
    Ok(json!({"count": agents.len(), "agents": agents}))
}

fn email_of(user: &Value) -> Option<String> {
    user.get("email")
        .and_then(Value::as_str)
        .map(|e| e.trim().to_lowercase())
        .filter(|e| e.contains('@'))
}

fn find<'a>(users: &'a [Value], email: &str) -> Option<&'a Value> {
    users.iter().find(|u| email_of(u).as_deref() == Some(email))
}

async fn rematch(ctx: &Agents, req: &Request) -> Result<Value, Refusal> {
    let bytes = body_bytes(req);
    let mut seeds = ctx.configured.clone();
    if !bytes.iter().all(u8::is_ascii_whitespace) {
        let body: Value = serde_json::from_slice(bytes).map_err(|_| {
            Refusal::bad_request("the body must be JSON: {\"agents\": [{\"email\": ...}]}")
        })?;
        if crate::domain::json::contains_nul(&body) {
            return Err(Refusal::bad_request(
                "the body holds NUL characters (\\u0000), which cannot be stored",
            ));
        }
        let extra = body
            .get("agents")
            .cloned()
            .ok_or_else(|| Refusal::bad_request("the body needs an agents array"))?;
        seeds.extend(parse_seeds(extra).map_err(Refusal::bad_request)?);
    }
    // One entry per email; the request's entry wins over the configured one.
    let mut seen = std::collections::HashSet::new();
    seeds.reverse();
    seeds.retain(|s| seen.insert(s.email.trim().to_lowercase()));
    seeds.reverse();
    let ghl_users = ctx.deps.ghl.list_users().await.map_err(Refusal::provider)?;
    let aloware_users = ctx
        .deps
        .aloware
        .list_users()
        .await
        .map_err(Refusal::provider)?;
    let client = ctx
        .pool()
        .get()
        .await
        .map_err(|_| Refusal::store_unavailable())?;
    let mut matched = 0;
    for seed in &seeds {
        let email = seed.email.trim().to_lowercase();
        let ghl = find(&ghl_users, &email);
        let aloware = find(&aloware_users, &email);
        let mut notes = Vec::new();
        if ghl.is_none() {
            notes.push("no GHL user of the location has this email");
        }
        if aloware.is_none() {
            notes.push("no Aloware user has this email");
        }
        if ghl.is_some() && aloware.is_some() {
            matched += 1;
        }
        let name = seed
            .display_name
            .clone()
            .or_else(|| {
                ghl.and_then(|u| u.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .or_else(|| {
                aloware
                    .and_then(|u| u.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| email.clone());
        client
            .execute(
                "INSERT INTO agent_directory (agent_key, display_name, email, ghl_user_id, aloware_user_id, match_notes)
                 VALUES ($1, $2, $1, $3, $4, $5)
                 ON CONFLICT (agent_key) DO UPDATE SET display_name = EXCLUDED.display_name,
                     ghl_user_id = EXCLUDED.ghl_user_id, aloware_user_id = EXCLUDED.aloware_user_id,
                     match_notes = EXCLUDED.match_notes, is_active = true, updated_at = now()",
                &[
                    &email,
                    &name,
                    &ghl.and_then(|u| id_str(u.get("id"))),
                    &aloware.and_then(|u| id_str(u.get("id"))),
                    &json!(notes),
                ],
            )
            .await
            .map_err(|_| Refusal::store_unavailable())?;
    }
    let mut answer = directory(ctx.pool()).await?;
    answer["seeded"] = json!(seeds.len());
    answer["matchedBothSides"] = json!(matched);
    Ok(answer)
}
