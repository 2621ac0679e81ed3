//! Verity gateway, tools and MCP server (SPEC §13) against the sandbox's Verity (which
//! serves the example catalog `infra/verity/api-catalog.json`), a real Postgres for the
//! audit rows, and keys and tokens the tests generate.
mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::*;
use df_sandbox::SandboxConfig;
use df_shared::app::verity as setup;
use df_shared::auth::clerk::{ClerkError, ClerkVerifier};
use df_shared::domain::verity::catalog::Catalog;
use df_shared::domain::verity::tools::{Toolset, ALIASES, MAX_NAME_LEN};
use df_shared::lambda::Settings;
use df_shared::verity::{gateway, mcp_http};
use lambda_http::Body;
use serde_json::{json, Value};

const API_KEY: &str = "test-df-middleware-key";

fn catalog_path() -> String {
    repo_root()
        .join("infra/verity/api-catalog.json")
        .display()
        .to_string()
}

fn settings(sandbox: &str, extra: &[(&str, &str)]) -> Settings {
    let base = format!("{sandbox}/verity");
    let catalog = catalog_path();
    let mut pairs: Vec<(String, String)> = [
        ("VERITY_BASE_URL", base.as_str()),
        ("VERITY_API_KEY", "sandbox-verity-key"),
        ("VERITY_CATALOG_URI", catalog.as_str()),
        ("DF_MIDDLEWARE_API_KEY", API_KEY),
        ("MCP_ALLOWED_HOSTS", "mcp.example.com,localhost"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        pairs.retain(|(name, _)| name != k);
        pairs.push((k.to_string(), v.to_string()));
    }
    Settings::from_pairs(pairs)
}

fn example_catalog() -> Arc<Catalog> {
    Arc::new(Catalog::parse(&std::fs::read_to_string(catalog_path()).unwrap()).unwrap())
}

async fn requests(sandbox: &str) -> Vec<Value> {
    reqwest::get(format!("{sandbox}/_sandbox/requests"))
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r["provider"] == "verity")
        .collect()
}

async fn sandbox_post(sandbox: &str, path: &str, body: Value) {
    let r = reqwest::Client::new()
        .post(format!("{sandbox}/_sandbox/{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

#[test]
fn every_catalog_operation_yields_exactly_one_tool_and_the_names_are_stable() {
    let catalog = example_catalog();
    let tools = Toolset::new(catalog.clone());
    let canonical: Vec<_> = tools
        .all()
        .iter()
        .filter(|t| t.alias_of.is_none())
        .collect();
    assert_eq!(
        catalog.operations.len(),
        42,
        "the example catalog's operations"
    );
    assert_eq!(canonical.len(), catalog.operations.len());
    let mut per_op = HashMap::new();
    for t in &canonical {
        *per_op.entry(t.operation).or_insert(0) += 1;
    }
    assert!(per_op.values().all(|n| *n == 1) && per_op.len() == catalog.operations.len());
    let names: Vec<&str> = tools.all().iter().map(|t| t.name.as_str()).collect();
    let unique: std::collections::HashSet<_> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "names are unique");
    for n in &names {
        assert!(
            n.len() <= MAX_NAME_LEN
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{n}"
        );
    }
    // Every legacy name prompts use resolves to the operation it always meant.
    for (alias, method, path) in ALIASES {
        let t = tools.get(alias).unwrap_or_else(|| panic!("alias {alias}"));
        let op = tools.operation(t);
        assert_eq!((op.method, op.path.as_str()), (*method, *path), "{alias}");
    }
    // Schemas: path params required, query typed, body only with a body method, nothing else.
    let t = tools.get("get_comms_broadcasts_by_id_recipients").unwrap();
    assert_eq!(t.input_schema["required"], json!(["id"]));
    assert_eq!(t.input_schema["properties"]["limit"]["type"], "number");
    assert_eq!(t.input_schema["additionalProperties"], false);
    assert!(t.input_schema["properties"].get("body").is_none());
    assert!(t.read_only && !t.destructive);
    let d = tools.get("delete_comms_broadcasts_by_id").unwrap();
    assert!(d.destructive && !d.read_only);
    let p = tools.get("post_calls_agents").unwrap();
    assert_eq!(
        p.input_schema["properties"]["body"]["properties"]["config"]["type"],
        "object"
    );
    assert_eq!(
        tools.get("get_comms_contacts").unwrap().input_schema["properties"]["tags"],
        json!({"type": "array", "items": {"type": "string"}, "description": "query parameter tags"})
    );
    // The snapshot: any change to naming or schemas shows up here.
    let snapshot: String = tools
        .all()
        .iter()
        .map(|t| {
            let op = tools.operation(t);
            let mut props: Vec<&String> = t.input_schema["properties"]
                .as_object()
                .unwrap()
                .keys()
                .collect();
            props.sort();
            format!(
                "{} {} {} [{}]\n",
                t.name,
                op.method.as_str(),
                op.path,
                props
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect();
    let file = repo_root().join("shared/tests/snapshots/verity_tools.txt");
    if std::env::var("UPDATE_SNAPSHOTS").is_ok() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &snapshot).unwrap();
    }
    let expected = std::fs::read_to_string(&file).expect("snapshot (UPDATE_SNAPSHOTS=1 writes it)");
    assert_eq!(
        snapshot, expected,
        "tool names or schemas changed: review, then UPDATE_SNAPSHOTS=1"
    );
}

async fn call_gateway(gw: &gateway::Gateway, auth: Option<&str>, body: Value) -> (u16, Value) {
    let mut headers = vec![];
    let bearer = auth.map(|a| format!("Bearer {a}"));
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    json_of(gateway::handle(gw, post("/api/verity", &headers, body.to_string())).await).await
}

#[tokio::test]
async fn the_gateway_answers_each_error_with_its_code() {
    let sandbox = df_sandbox::spawn(SandboxConfig::default()).await;
    let gw = setup::gateway(&settings(&sandbox, &[])).await.unwrap();
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or("").to_string();
    let ok =
        json!({"endpoint": "/api/comms/broadcasts/{id}", "method": "GET", "params": {"id": "b1"}});
    let (s, v) = call_gateway(&gw, None, ok.clone()).await;
    assert_eq!((s, code(&v)), (401, "UNAUTHORIZED".into()));
    let (s, v) = call_gateway(&gw, Some("wrong"), ok.clone()).await;
    assert_eq!((s, code(&v)), (401, "UNAUTHORIZED".into()));
    let (s, v) = call_gateway(&gw, Some(API_KEY), ok.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["success"], true);
    assert_eq!(v["data"]["id"], "b1");
    assert_eq!(v["meta"]["status"], 200);
    assert_eq!(v["meta"]["method"], "GET");
    for (body, status, expected) in [
        (json!("not an object"), 400, "INVALID_REQUEST"),
        (json!({"method": "GET"}), 400, "INVALID_REQUEST"),
        (
            json!({"endpoint": "/admin", "method": "GET"}),
            400,
            "INVALID_ENDPOINT",
        ),
        (
            json!({"endpoint": "/api/../admin", "method": "GET"}),
            400,
            "INVALID_ENDPOINT",
        ),
        (
            json!({"endpoint": "/api/health", "method": "TRACE"}),
            400,
            "INVALID_METHOD",
        ),
        (
            json!({"endpoint": "/api/not/catalogued", "method": "GET"}),
            404,
            "UNKNOWN_ENDPOINT",
        ),
        (
            json!({"endpoint": "/api/health", "method": "DELETE"}),
            404,
            "UNKNOWN_ENDPOINT",
        ),
        (
            json!({"endpoint": "/api/comms/broadcasts/{id}", "method": "GET"}),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"endpoint": "/api/comms/broadcasts/{id}", "method": "GET", "params": {"id": ".."}}),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"endpoint": "/api/comms/broadcasts", "method": "GET", "body": {"x": 1}}),
            400,
            "INVALID_REQUEST",
        ),
    ] {
        let (s, v) = call_gateway(&gw, Some(API_KEY), body.clone()).await;
        assert_eq!((s, code(&v)), (status, expected.to_string()), "{body}: {v}");
        assert_eq!(v["success"], false);
    }
    // The catalog's own spelling of a malformed path works (and reaches the real path).
    let (s, v) = call_gateway(
        &gw,
        Some(API_KEY),
        json!({"endpoint": "/apicalls/agents/[agentId]/test", "method": "POST",
        "params": {"agentId": "a1"}, "body": {"to": "+12025550100"}}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let last = requests(&sandbox).await.pop().unwrap();
    assert_eq!(last["path"], "/verity/api/calls/agents/a1/test");
    assert_eq!(last["body"], json!({"to": "+12025550100"}));
    // Verity's own errors keep their status: HTTP_<status>.
    sandbox_post(
        &sandbox,
        "faults",
        json!({"provider": "verity", "status": 404, "count": 1}),
    )
    .await;
    let (s, v) = call_gateway(&gw, Some(API_KEY), ok.clone()).await;
    assert_eq!((s, code(&v)), (404, "HTTP_404".into()), "{v}");
    // GET the catalog.
    let get = lambda_http::http::Request::builder()
        .method("GET")
        .uri("http://localhost/api/verity")
        .header("authorization", format!("Bearer {API_KEY}"))
        .body(Body::Empty)
        .unwrap();
    let (s, v) = json_of(gateway::handle(&gw, get).await).await;
    assert_eq!(s, 200);
    assert_eq!(
        v["data"]["catalog"]["endpoints"].as_array().unwrap().len(),
        29
    );
    // A catalog that cannot be read: 503 CATALOG_UNAVAILABLE, not a crash.
    let broken = setup::gateway(&settings(
        &sandbox,
        &[("VERITY_CATALOG_URI", "/nonexistent/catalog.json")],
    ))
    .await
    .unwrap();
    let (s, v) = call_gateway(&broken, Some(API_KEY), ok.clone()).await;
    assert_eq!((s, code(&v)), (503, "CATALOG_UNAVAILABLE".into()));
    // Verity unreachable: PROXY_ERROR.
    let down = setup::gateway(&settings(
        &sandbox,
        &[("VERITY_BASE_URL", "http://127.0.0.1:1")],
    ))
    .await
    .unwrap();
    let (s, v) = call_gateway(&down, Some(API_KEY), ok.clone()).await;
    assert_eq!((s, code(&v)), (502, "PROXY_ERROR".into()), "{v}");
}

#[tokio::test]
async fn path_params_stay_inside_their_segment_and_only_allowed_headers_are_forwarded() {
    let sandbox = df_sandbox::spawn(SandboxConfig::default()).await;
    let gw = setup::gateway(&settings(&sandbox, &[])).await.unwrap();
    for (id, wire) in [
        ("../../admin/users", "..%2F..%2Fadmin%2Fusers"),
        ("a/b?c=d#e", "a%2Fb%3Fc%3Dd%23e"),
        ("ä ö", "%C3%A4%20%C3%B6"),
    ] {
        let (s, v) = call_gateway(
            &gw,
            Some(API_KEY),
            json!({"endpoint": "/api/comms/broadcasts/[id]/stats", "method": "GET",
            "params": {"id": id}}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        let last = requests(&sandbox).await.pop().unwrap();
        assert_eq!(
            last["path"],
            format!("/verity/api/comms/broadcasts/{wire}/stats")
        );
    }
    let (s, _) = call_gateway(&gw, Some(API_KEY), json!({"endpoint": "/api/users/me", "method": "GET",
        "headers": {"Authorization": "Bearer a-users-own-token", "Cookie": "__session=x", "Host": "evil.example",
            "Connection": "upgrade", "X-Request-Id": "req-1", "Accept-Language": "es", "X-Forwarded-For": "1.2.3.4"}})).await;
    assert_eq!(s, 200);
    let headers = requests(&sandbox).await.pop().unwrap()["headers"].clone();
    assert_eq!(
        headers["authorization"], "Bearer sandbox-verity-key",
        "the service credential, never the caller's"
    );
    assert_eq!(headers["x-request-id"], "req-1");
    assert_eq!(headers["accept-language"], "es");
    for dropped in ["cookie", "x-forwarded-for"] {
        assert!(
            headers.get(dropped).is_none(),
            "{dropped} forwarded: {headers}"
        );
    }
    assert_ne!(headers["host"], "evil.example");
    assert_ne!(
        headers.get("connection").and_then(Value::as_str),
        Some("upgrade")
    );
}

#[tokio::test]
async fn upstream_throttling_is_retried_inside_the_budget_and_big_answers_are_refused() {
    let sandbox = df_sandbox::spawn(SandboxConfig::default()).await;
    let gw = setup::gateway(&settings(
        &sandbox,
        &[("VERITY_MAX_RESPONSE_BYTES", "20000")],
    ))
    .await
    .unwrap();
    sandbox_post(
        &sandbox,
        "faults",
        json!({"provider": "verity", "status": 429, "count": 2}),
    )
    .await;
    let (s, v) = call_gateway(
        &gw,
        Some(API_KEY),
        json!({"endpoint": "/api/health", "method": "GET"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        requests(&sandbox).await.len(),
        3,
        "two 429s, then the answer"
    );
    // A POST that fails with 500 is not repeated (it may have happened).
    sandbox_post(
        &sandbox,
        "faults",
        json!({"provider": "verity", "status": 500, "count": 3}),
    )
    .await;
    let (s, v) = call_gateway(
        &gw,
        Some(API_KEY),
        json!({"endpoint": "/api/comms/broadcasts", "method": "POST",
        "body": {"subject": "Hi"}}),
    )
    .await;
    assert_eq!((s, v["error"]["code"].as_str()), (500, Some("HTTP_500")));
    assert_eq!(requests(&sandbox).await.len(), 4);
    sandbox_post(&sandbox, "reset", json!({})).await;
    let (s, v) = call_gateway(
        &gw,
        Some(API_KEY),
        json!({"endpoint": "/api/comms/broadcasts/{id}/recipients", "method": "GET",
        "params": {"id": "b1"}, "query": {"limit": 2000}}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (502, Some("PROXY_ERROR")),
        "{v}"
    );
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("exceeds 20000 bytes"));
}

#[tokio::test]
async fn a_clerk_machine_token_is_minted_cached_and_refreshed_once_on_401() {
    let sandbox = df_sandbox::spawn(SandboxConfig::default()).await;
    let clerk = format!("{sandbox}/clerk");
    let gw = setup::gateway(&settings(
        &sandbox,
        &[
            ("VERITY_API_KEY", ""),
            ("CLERK_MACHINE_SECRET_KEY", "sandbox-clerk-machine-secret"),
            ("CLERK_API_URL", clerk.as_str()),
        ],
    ))
    .await
    .unwrap();
    let health = json!({"endpoint": "/api/health", "method": "GET"});
    for _ in 0..2 {
        let (s, v) = call_gateway(&gw, Some(API_KEY), health.clone()).await;
        assert_eq!(s, 200, "{v}");
    }
    let tokens: Vec<String> = requests(&sandbox)
        .await
        .iter()
        .map(|r| r["headers"]["authorization"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0], tokens[1], "one token for both calls");
    assert!(tokens[0].starts_with("Bearer mt_"));
    // The token stops working (expired, revoked): one new token, the call succeeds.
    sandbox_post(&sandbox, "seed", json!({"verity_revoke_tokens": true})).await;
    let (s, v) = call_gateway(&gw, Some(API_KEY), health.clone()).await;
    assert_eq!(s, 200, "{v}");
    let all = requests(&sandbox).await;
    assert_eq!(all.len(), 4, "401, then the retry with a fresh token");
    assert_ne!(
        all[3]["headers"]["authorization"],
        all[0]["headers"]["authorization"]
    );
}

mod clerk_tokens {
    use super::*;
    use base64::Engine;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
    use rsa::traits::PublicKeyParts;

    pub struct Keys {
        pub pem_private: String,
        pub pem_public: String,
        pub jwk: Value,
    }

    pub fn keys(kid: &str) -> Keys {
        let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let public = private.to_public_key();
        let b64 = |b: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        Keys {
            pem_private: private
                .to_pkcs8_pem(Default::default())
                .unwrap()
                .to_string(),
            pem_public: public.to_public_key_pem(Default::default()).unwrap(),
            jwk: json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": b64(public.n().to_bytes_be()), "e": b64(public.e().to_bytes_be())}),
        }
    }

    pub fn token(keys: &Keys, kid: &str, claims: Value) -> String {
        let mut h = Header::new(jsonwebtoken::Algorithm::RS256);
        h.kid = Some(kid.to_string());
        encode(
            &h,
            &claims,
            &EncodingKey::from_rsa_pem(keys.pem_private.as_bytes()).unwrap(),
        )
        .unwrap()
    }
}

#[tokio::test]
async fn clerk_session_tokens_are_verified() {
    use clerk_tokens::{keys, token};
    let iss = "https://clerk.example.com";
    let now = chrono::Utc::now().timestamp();
    let k = keys("kid-1");
    let other = keys("kid-2");
    let claims = |extra: Value| {
        let mut c = json!({"sub": "user_1", "sid": "sess_1", "iss": iss, "exp": now + 300, "iat": now, "nbf": now - 5,
            "azp": "https://app.example.com"});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };
    let parties = vec!["https://app.example.com".to_string()];
    let pem = ClerkVerifier::with_pem(&k.pem_public, iss, parties.clone()).unwrap();
    let good = token(&k, "kid-1", claims(json!({})));
    assert_eq!(pem.verify(&good).await.unwrap().sub, "user_1");
    for (why, t) in [
        (
            "expired",
            token(&k, "kid-1", claims(json!({"exp": now - 60}))),
        ),
        (
            "not yet valid",
            token(&k, "kid-1", claims(json!({"nbf": now + 120}))),
        ),
        (
            "wrong issuer",
            token(
                &k,
                "kid-1",
                claims(json!({"iss": "https://evil.example.com"})),
            ),
        ),
        ("another key", token(&other, "kid-1", claims(json!({})))),
    ] {
        assert!(
            matches!(pem.verify(&t).await, Err(ClerkError::Rejected(_))),
            "{why}"
        );
    }
    assert_eq!(
        pem.verify(&token(
            &k,
            "kid-1",
            claims(json!({"azp": "https://evil.example.com"}))
        ))
        .await,
        Err(ClerkError::Party)
    );
    // Small leeway only: 5 s past expiry still passes, 60 s does not.
    assert!(pem
        .verify(&token(&k, "kid-1", claims(json!({"exp": now - 5}))))
        .await
        .is_ok());
    assert!(pem.verify("not.a.jwt").await.is_err());
    // JWKS: the key by `kid`; an unknown kid is refused.
    let sandbox = df_sandbox::spawn(SandboxConfig::default()).await;
    sandbox_post(&sandbox, "seed", json!({"clerk_jwks": {"keys": [k.jwk]}})).await;
    let jwks = ClerkVerifier::with_jwks(
        reqwest::Client::new(),
        &format!("{sandbox}/clerk/jwks"),
        iss,
        parties,
    );
    assert_eq!(jwks.verify(&good).await.unwrap().sub, "user_1");
    assert_eq!(
        jwks.verify(&token(&other, "kid-2", claims(json!({}))))
            .await,
        Err(ClerkError::UnknownKey)
    );
    assert!(
        jwks.verify(&token(&other, "kid-1", claims(json!({}))))
            .await
            .is_err(),
        "right kid, wrong key"
    );
}

/// One MCP JSON-RPC request through `mcp-http`'s handler.
async fn mcp(
    ctx: &mcp_http::McpHttp,
    host: &str,
    key: Option<&str>,
    body: Value,
) -> (u16, HashMap<String, String>, Value) {
    let mut b = lambda_http::http::Request::builder()
        .method("POST")
        .uri(format!("http://{host}/mcp"))
        .header("host", host)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18");
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    let resp = mcp_http::handle(ctx, b.body(Body::Text(body.to_string())).unwrap()).await;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let text = match resp.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// RFC 9728 metadata: unauthenticated, behind the Host check, naming the resource as the
/// caller reached it and no authorization server while Clerk sessions are not allowed.
#[tokio::test]
async fn mcp_serves_protected_resource_metadata() {
    let sandbox = df_sandbox::spawn(SandboxConfig::default()).await;
    let db = fresh_database().await;
    let ctx = setup::mcp_http(&settings(
        &sandbox,
        &[("DATABASE_URL", db.as_str()), ("DB_POOL_SIZE", "2")],
    ))
    .await
    .unwrap();
    let get = |host: &'static str, path: &'static str| {
        let req = lambda_http::http::Request::builder()
            .method("GET")
            .uri(format!("http://{host}{path}"))
            .header("host", host)
            .body(Body::Empty)
            .unwrap();
        mcp_http::handle(&ctx, req)
    };
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let resp = get("mcp.example.com", path).await;
        assert_eq!(resp.status(), 200);
        let Body::Text(text) = resp.body() else {
            panic!("a JSON body")
        };
        let doc: Value = serde_json::from_str(text).unwrap();
        assert_eq!(doc["resource"], "https://mcp.example.com/mcp");
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
        assert!(doc.get("authorization_servers").is_none(), "{doc}");
    }
    let resp = get(
        "localhost:9000",
        "/.well-known/oauth-protected-resource/mcp",
    )
    .await;
    let Body::Text(text) = resp.body() else {
        panic!("a JSON body")
    };
    assert!(text.contains("\"http://localhost:9000/mcp\""), "{text}");
    assert_eq!(
        get("evil.example.com", "/.well-known/oauth-protected-resource")
            .await
            .status(),
        403
    );
}

fn rpc(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

#[tokio::test]
async fn mcp_over_http_initialises_lists_in_pages_calls_and_refuses_strangers() {
    let sandbox = df_sandbox::spawn(SandboxConfig::default()).await;
    let db = fresh_database().await;
    let ctx = setup::mcp_http(&settings(
        &sandbox,
        &[
            ("DATABASE_URL", db.as_str()),
            ("MCP_PAGE_SIZE", "20"),
            ("DB_POOL_SIZE", "2"),
        ],
    ))
    .await
    .unwrap();
    let init = rpc(
        1,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}),
    );
    let (s, h, _) = mcp(&ctx, "mcp.example.com", None, init.clone()).await;
    assert_eq!(s, 401);
    // RFC 9728: the challenge names the metadata; no error code without a token.
    assert_eq!(
        h["www-authenticate"],
        "Bearer realm=\"df-middleware-mcp\", resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
    );
    let (s, h, _) = mcp(&ctx, "mcp.example.com", Some("wrong"), init.clone()).await;
    assert_eq!(s, 401);
    assert!(
        h["www-authenticate"].ends_with(", error=\"invalid_token\""),
        "{h:?}"
    );
    let (s, _, _) = mcp(&ctx, "evil.example.com", Some(API_KEY), init.clone()).await;
    assert_eq!(s, 403);
    let (s, h, v) = mcp(&ctx, "mcp.example.com", Some(API_KEY), init).await;
    assert_eq!(s, 200, "{v}");
    assert!(h["content-type"].starts_with("application/json"), "{h:?}");
    assert!(v["result"]["capabilities"]["tools"].is_object(), "{v}");
    assert_eq!(v["result"]["serverInfo"]["name"], "df-middleware-verity");
    // tools/list in pages of 20: every tool exactly once.
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    for id in 2..10 {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let (s, _, v) = mcp(
            &ctx,
            "mcp.example.com",
            Some(API_KEY),
            rpc(id, "tools/list", params),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        names.extend(
            v["result"]["tools"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_string()),
        );
        cursor = v["result"]["nextCursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    // The two requireAdmin operations are hidden from a key without `;admin`.
    assert_eq!(names.len(), 40 + ALIASES.len(), "{names:?}");
    // A call.
    let call = |id, name: &str, args: Value| {
        rpc(id, "tools/call", json!({"name": name, "arguments": args}))
    };
    let (_, _, v) = mcp(
        &ctx,
        "mcp.example.com",
        Some(API_KEY),
        call(20, "get_comms_broadcasts_by_id_stats", json!({"id": "b7"})),
    )
    .await;
    assert_eq!(v["result"]["isError"], false, "{v}");
    assert_eq!(v["result"]["structuredContent"]["id"], "b7", "{v}");
    assert!(v["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("\"b7\""));
    // A legacy name.
    let (_, _, v) = mcp(
        &ctx,
        "mcp.example.com",
        Some(API_KEY),
        call(
            21,
            "calls_agents_test",
            json!({"agentId": "a1", "body": {"to": "+12025550100"}}),
        ),
    )
    .await;
    assert!(v["result"]["structuredContent"]["success"] == true, "{v}");
    assert_eq!(
        requests(&sandbox).await.last().unwrap()["path"],
        "/verity/api/calls/agents/a1/test"
    );
    // Invalid arguments never reach Verity.
    let before = requests(&sandbox).await.len();
    for bad in [
        json!({}),
        json!({"id": 7}),
        json!({"id": "b1", "bogus": true}),
    ] {
        let (_, _, v) = mcp(
            &ctx,
            "mcp.example.com",
            Some(API_KEY),
            call(22, "get_comms_broadcasts_by_id_stats", bad.clone()),
        )
        .await;
        assert_eq!(v["result"]["isError"], true, "{bad}: {v}");
        assert_eq!(
            v["result"]["structuredContent"]["error"]["code"], "INVALID_ARGUMENTS",
            "{bad}: {v}"
        );
    }
    let (_, _, v) = mcp(
        &ctx,
        "mcp.example.com",
        Some(API_KEY),
        call(23, "get_comms_broadcast", json!({})),
    )
    .await;
    assert_eq!(v["error"]["code"], -32602);
    assert!(
        v["error"]["data"]["didYouMean"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{v}"
    );
    assert_eq!(requests(&sandbox).await.len(), before);
    // An upstream error is a tool error with its status.
    sandbox_post(
        &sandbox,
        "faults",
        json!({"provider": "verity", "status": 500, "count": 1}),
    )
    .await;
    let (_, _, v) = mcp(
        &ctx,
        "mcp.example.com",
        Some(API_KEY),
        call(
            24,
            "post_comms_broadcasts",
            json!({"body": {"subject": "Hi"}}),
        ),
    )
    .await;
    assert_eq!(v["result"]["isError"], true, "{v}");
    assert_eq!(v["result"]["structuredContent"]["status"], 500);
    // A large answer is cut, saying so.
    let (_, _, v) = mcp(
        &ctx,
        "mcp.example.com",
        Some(API_KEY),
        call(
            25,
            "get_comms_broadcasts_by_id_recipients",
            json!({"id": "b1", "limit": 3000}),
        ),
    )
    .await;
    let text = v["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.len() < 50_500 && text.contains("[truncated: the result is"),
        "{}",
        text.len()
    );
    assert!(v["result"].get("structuredContent").is_none());
    // The audit: one row per call, no arguments.
    let rows = db_client(&db)
        .await
        .query(
            "SELECT principal, tool, method, path, status FROM mcp_tool_calls WHERE error IS NULL OR status NOT IN (400, 404) ORDER BY at",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 4, "stats, alias, failed POST, recipients");
    let refused = db_client(&db)
        .await
        .query_one(
            "SELECT count(*) FROM mcp_tool_calls WHERE status IN (400, 404) AND error IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(
        refused, 4,
        "three invalid calls and an unknown tool, audited too"
    );
    assert!(rows[0].get::<_, String>(0).starts_with("key:"));
    assert_eq!(
        rows[0].get::<_, String>(3),
        "/api/comms/broadcasts/{id}/stats"
    );
    assert_eq!(rows[2].get::<_, i32>(4), 500);
    let dump: String = db_client(&db)
        .await
        .query_one(
            "SELECT string_agg(row_to_json(m)::text, ' ') FROM mcp_tool_calls m",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        !dump.contains("/b7") && !dump.contains("+1202") && !dump.contains("Hi"),
        "arguments leaked into the audit: {dump}"
    );
}

#[tokio::test]
async fn mcp_modes_read_only_filtered_and_dynamic() {
    let sandbox = df_sandbox::spawn(SandboxConfig::default()).await;
    let list = |ctx: mcp_http::McpHttp| async move {
        let (_, _, v) = mcp(
            &ctx,
            "localhost",
            Some(API_KEY),
            rpc(1, "tools/list", json!({})),
        )
        .await;
        (
            ctx,
            v["result"]["tools"]
                .as_array()
                .unwrap_or_else(|| panic!("{v}"))
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>(),
        )
    };
    let (ro, names) = list(
        setup::mcp_http(&settings(&sandbox, &[("MCP_READ_ONLY", "true")]))
            .await
            .unwrap(),
    )
    .await;
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("get_") || n.ends_with("_get")),
        "{names:?}"
    );
    let (_, _, v) = mcp(
        &ro,
        "localhost",
        Some(API_KEY),
        rpc(
            2,
            "tools/call",
            json!({"name": "post_comms_broadcasts", "arguments": {}}),
        ),
    )
    .await;
    assert_eq!(
        v["error"]["code"], -32602,
        "hidden tools cannot be called: {v}"
    );
    let (_, names) = list(
        setup::mcp_http(&settings(
            &sandbox,
            &[
                ("MCP_TOOLS_MODE", "filtered"),
                ("MCP_TOOL_DOMAINS", "calls"),
            ],
        ))
        .await
        .unwrap(),
    )
    .await;
    assert!(
        !names.is_empty() && names.iter().all(|n| n.contains("calls")),
        "{names:?}"
    );
    let dynamic = setup::mcp_http(&settings(
        &sandbox,
        &[("MCP_TOOLS_MODE", "dynamic"), ("MCP_API_KEYS", "k1,k2")],
    ))
    .await
    .unwrap();
    // MCP_API_KEYS replaces the default key.
    let (s, _, _) = mcp(
        &dynamic,
        "localhost",
        Some(API_KEY),
        rpc(1, "tools/list", json!({})),
    )
    .await;
    assert_eq!(s, 401);
    let (_, _, v) = mcp(
        &dynamic,
        "localhost",
        Some("k2"),
        rpc(1, "tools/list", json!({})),
    )
    .await;
    let names: Vec<&str> = v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "list_verity_endpoints",
            "get_verity_endpoint_schema",
            "invoke_verity_endpoint"
        ]
    );
    let call = |id, name: &str, args: Value| {
        rpc(id, "tools/call", json!({"name": name, "arguments": args}))
    };
    let (_, _, v) = mcp(
        &dynamic,
        "localhost",
        Some("k2"),
        call(2, "list_verity_endpoints", json!({"domain": "comms"})),
    )
    .await;
    let endpoints = v["result"]["structuredContent"]["endpoints"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        endpoints
            .iter()
            .all(|e| e["path"].as_str().unwrap().starts_with("/api/comms/")),
        "{v}"
    );
    let (_, _, v) = mcp(
        &dynamic,
        "localhost",
        Some("k2"),
        call(
            3,
            "get_verity_endpoint_schema",
            json!({"name": "get_comms_broadcasts_by_id"}),
        ),
    )
    .await;
    assert_eq!(
        v["result"]["structuredContent"]["inputSchema"]["required"],
        json!(["id"])
    );
    let (_, _, v) = mcp(
        &dynamic,
        "localhost",
        Some("k2"),
        call(
            4,
            "invoke_verity_endpoint",
            json!({"name": "get_comms_broadcasts_by_id", "arguments": {"id": "b9"}}),
        ),
    )
    .await;
    assert_eq!(v["result"]["structuredContent"]["id"], "b9", "{v}");
    let (_, _, v) = mcp(
        &dynamic,
        "localhost",
        Some("k2"),
        call(
            5,
            "invoke_verity_endpoint",
            json!({"name": "get_comms_broadcasts_by_id", "arguments": {}}),
        ),
    )
    .await;
    assert_eq!(v["result"]["isError"], true, "{v}");
}

/// `df-mcp` driven over stdio the way an MCP client does it: initialize, the
/// initialized notification, tools/list, tools/call.
#[tokio::test]
async fn the_stdio_binary_serves_the_same_tools() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let sandbox = df_sandbox::spawn(SandboxConfig::default()).await;
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "df-mcp"])
        .current_dir(repo_root())
        .status()
        .unwrap();
    assert!(status.success(), "cargo build -p df-mcp");
    // The opt-out registry the SMS guard reads; started away from the checkout.
    let database = fresh_database().await;
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target"));
    let mut child = tokio::process::Command::new(target.join("debug/df-mcp"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("VERITY_BASE_URL", format!("{sandbox}/verity"))
        .env("VERITY_API_KEY", "sandbox-verity-key")
        .env("VERITY_CATALOG_URI", catalog_path())
        .env("DATABASE_URL", &database)
        .current_dir(std::env::temp_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut ask = async |msg: Value, answer: bool| -> Value {
        stdin
            .write_all(format!("{msg}\n").as_bytes())
            .await
            .unwrap();
        if !answer {
            return Value::Null;
        }
        let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        serde_json::from_str(&line).unwrap()
    };
    let v = ask(rpc(1, "initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}})), true).await;
    assert!(v["result"]["capabilities"]["tools"].is_object(), "{v}");
    ask(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        false,
    )
    .await;
    let v = ask(rpc(2, "tools/list", json!({})), true).await;
    let tools = v["result"]["tools"].as_array().unwrap();
    assert_eq!(
        tools.len(),
        40 + ALIASES.len(),
        "one page holds them all (not the two requireAdmin ones: the stdio user is no admin)"
    );
    assert!(tools.iter().any(|t| t["name"] == "sms_sms_create"));
    // The legacy alias takes the original's flat arguments.
    let v = ask(
        rpc(
            3,
            "tools/call",
            json!({"name": "sms_sms_create", "arguments": {"to": "+12025550100", "body": "hi"}}),
        ),
        true,
    )
    .await;
    assert_eq!(v["result"]["structuredContent"]["success"], true, "{v}");
    let last = requests(&sandbox).await.pop().unwrap();
    assert_eq!(
        last["path"],
        "/verity/api/integrations/df-middleware/send-message"
    );
    assert_eq!(
        last["headers"]["authorization"],
        "Bearer sandbox-verity-key"
    );
    let v = ask(
        rpc(
            4,
            "tools/call",
            json!({"name": "get_comms_broadcasts_by_id", "arguments": {"id": 7}}),
        ),
        true,
    )
    .await;
    assert_eq!(
        v["result"]["isError"], true,
        "invalid arguments are the model's to fix: {v}"
    );
    let v = ask(
        rpc(
            5,
            "tools/call",
            json!({"name": "no_such_tool", "arguments": {}}),
        ),
        true,
    )
    .await;
    assert_eq!(
        v["error"]["code"], -32602,
        "an unknown tool is a protocol error: {v}"
    );
}

/// `VERITY_CATALOG_URI=s3://bucket/key` reads the object (the emulator's S3).
#[tokio::test]
async fn the_catalog_loads_from_s3() {
    let config = df_shared::adapters::queue::aws_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let bucket = format!("catalog-{}", uuid::Uuid::new_v4().simple());
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create a bucket in the emulator");
    let text = std::fs::read(catalog_path()).unwrap();
    s3.put_object()
        .bucket(&bucket)
        .key("verity/api-catalog.json")
        .body(text.into())
        .send()
        .await
        .unwrap();
    let uri = format!("s3://{bucket}/verity/api-catalog.json");
    let catalog = df_shared::adapters::catalog_source::load(&uri)
        .await
        .unwrap();
    assert_eq!(catalog.operations.len(), 42);
    let missing =
        df_shared::adapters::catalog_source::load(&format!("s3://{bucket}/nope.json")).await;
    assert!(missing
        .unwrap_err()
        .to_string()
        .contains("cannot read the catalog object"));
    assert!(
        df_shared::adapters::catalog_source::load("https://example.com/c.json")
            .await
            .is_err()
    );
}

// ---- who may call what, side effects once, real clients (SPEC §13) ----

fn tool_names(v: &Value) -> Vec<String> {
    v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

async fn audit_rows(database: &str) -> Vec<(String, String, i32, Option<String>)> {
    db_client(database)
        .await
        .query(
            "SELECT principal, tool, status, error FROM mcp_tool_calls ORDER BY at, id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

#[tokio::test]
async fn each_caller_only_what_its_key_or_session_allows() {
    use clerk_tokens::{keys, token};
    let sandbox = df_sandbox::spawn(SandboxConfig::default()).await;
    let database = fresh_database().await;
    let iss = "https://clerk.example.com";
    let k = keys("kid-a");
    let now = chrono::Utc::now().timestamp();
    let session = |extra: Value| {
        let mut c =
            json!({"sub": "user_9", "iss": iss, "exp": now + 300, "iat": now, "aud": "df-mcp"});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        token(&k, "kid-a", c)
    };
    let keys_spec =
        "full-key-0001, ro-key-0002;ro, comms-key-0003;domains=comms;, admin-key-0004;admin";
    let base = [
        ("MCP_API_KEYS", keys_spec),
        ("DATABASE_URL", database.as_str()),
        ("CLERK_JWT_KEY", k.pem_public.as_str()),
        ("CLERK_ISSUER", iss),
    ];
    let ctx = setup::mcp_http(&settings(&sandbox, &base)).await.unwrap();
    let list = rpc(1, "tools/list", json!({}));
    let names = |key: &'static str| {
        let ctx = &ctx;
        let list = list.clone();
        async move { tool_names(&mcp(ctx, "localhost", Some(key), list).await.2) }
    };
    let full = names("full-key-0001").await;
    assert_eq!(
        full.len(),
        40 + ALIASES.len(),
        "every tool but the two requireAdmin ones"
    );
    assert!(
        full[..ALIASES.len()]
            .iter()
            .all(|n| ALIASES.iter().any(|a| a.0 == n)),
        "aliases first: {full:?}"
    );
    assert_eq!(names("admin-key-0004").await.len(), 42 + ALIASES.len());
    let ro = names("ro-key-0002").await;
    assert!(
        ro.iter()
            .all(|n| n.starts_with("get_") || n.ends_with("_get")),
        "{ro:?}"
    );
    let comms = names("comms-key-0003").await;
    assert!(comms.iter().all(|n| n.contains("comms")), "{comms:?}");
    // Clerk sessions are no principal unless allowed.
    let (s, _, _) = mcp(&ctx, "localhost", Some(&session(json!({}))), list.clone()).await;
    assert_eq!(s, 401, "CLERK_SESSIONS_ALLOWED is off by default");

    let before = requests(&sandbox).await.len();
    let call = |id, name: &str, args: Value| {
        rpc(id, "tools/call", json!({"name": name, "arguments": args}))
    };
    let (_, _, v) = mcp(
        &ctx,
        "localhost",
        Some("ro-key-0002"),
        call(
            2,
            "post_comms_broadcasts",
            json!({"body": {"subject": "x"}}),
        ),
    )
    .await;
    assert_eq!(v["result"]["isError"], true, "{v}");
    assert_eq!(
        v["result"]["structuredContent"]["error"]["code"], "FORBIDDEN",
        "{v}"
    );
    let (_, _, v) = mcp(
        &ctx,
        "localhost",
        Some("full-key-0001"),
        call(3, "get_admin_users", json!({})),
    )
    .await;
    assert_eq!(
        v["result"]["structuredContent"]["error"]["code"], "FORBIDDEN",
        "{v}"
    );
    let (_, _, v) = mcp(
        &ctx,
        "localhost",
        Some("comms-key-0003"),
        call(4, "get_calls_history", json!({})),
    )
    .await;
    assert_eq!(
        v["result"]["structuredContent"]["error"]["code"], "FORBIDDEN",
        "{v}"
    );
    // A hidden write tool is not suggested to a read-only key.
    let (_, _, v) = mcp(
        &ctx,
        "localhost",
        Some("ro-key-0002"),
        call(5, "post_comms_broadcast", json!({})),
    )
    .await;
    let hints = v["error"]["data"]["didYouMean"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        hints
            .iter()
            .all(|h| h.as_str().unwrap().starts_with("get_")),
        "{v}"
    );
    assert_eq!(
        requests(&sandbox).await.len(),
        before,
        "nothing refused reached Verity"
    );
    let (_, _, v) = mcp(
        &ctx,
        "localhost",
        Some("admin-key-0004"),
        call(6, "get_admin_users", json!({})),
    )
    .await;
    assert_ne!(v["result"]["isError"], true, "{v}");
    let rows = audit_rows(&database).await;
    let refused: Vec<_> = rows.iter().filter(|r| r.2 == 403 || r.2 == 404).collect();
    assert_eq!(refused.len(), 4, "every refusal audited: {rows:?}");
    assert!(
        rows.iter()
            .all(|r| r.0.starts_with("key:") && !r.0.contains("0002")),
        "keys named, not shown: {rows:?}"
    );

    // Sessions allowed: `aud` checked, admin from the named claim.
    let mut allowed = base.to_vec();
    allowed.extend([
        ("CLERK_SESSIONS_ALLOWED", "true"),
        ("CLERK_AUDIENCE", "df-mcp"),
        ("CLERK_ADMIN_CLAIM", "metadata.admin"),
    ]);
    let ctx = setup::mcp_http(&settings(&sandbox, &allowed))
        .await
        .unwrap();
    let (s, _, v) = mcp(&ctx, "localhost", Some(&session(json!({}))), list.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        tool_names(&v).len(),
        40 + ALIASES.len(),
        "a user is no admin"
    );
    let (s, _, _) = mcp(
        &ctx,
        "localhost",
        Some(&session(json!({"aud": "another-app"}))),
        list.clone(),
    )
    .await;
    assert_eq!(s, 401, "another audience");
    let (_, _, v) = mcp(
        &ctx,
        "localhost",
        Some(&session(json!({"metadata": {"admin": true}}))),
        list.clone(),
    )
    .await;
    assert_eq!(tool_names(&v).len(), 42 + ALIASES.len(), "the admin claim");

    // The gateway enforces the same rules.
    let gw = setup::gateway(&settings(
        &sandbox,
        &[
            ("DF_MIDDLEWARE_API_KEY", "gw-key-0005;ro"),
            ("DATABASE_URL", database.as_str()),
        ],
    ))
    .await
    .unwrap();
    let (s, v) = call_gateway(
        &gw,
        Some("gw-key-0005"),
        json!({"endpoint": "/api/comms/broadcasts", "method": "POST", "body": {"subject": "x"}}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "{v}"
    );
    let (s, v) = call_gateway(
        &gw,
        Some("gw-key-0005"),
        json!({"endpoint": "/api/admin/users", "method": "GET"}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "{v}"
    );
    let (s, _) = call_gateway(
        &gw,
        Some("gw-key-0005"),
        json!({"endpoint": "/api/health", "method": "GET"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        requests(&sandbox).await.len(),
        before + 2,
        "only the permitted calls reached Verity"
    );
}

#[tokio::test]
async fn sms_to_an_opted_out_number_is_refused_by_the_gateway_and_by_mcp() {
    let sandbox = df_sandbox::spawn(SandboxConfig::default()).await;
    let database = fresh_database().await;
    let phone = "+12025550188";
    db_client(&database)
        .await
        .execute(
            "INSERT INTO optout_events (phone_number, action, keyword, source, source_message_id, occurred_at, received_at)
             VALUES ($1, 'opt_out', 'STOP', 'texting', 'stop-1', now(), now())",
            &[&phone],
        )
        .await
        .unwrap();
    let extra = [
        ("DATABASE_URL", database.as_str()),
        (
            "VERITY_SMS_OPERATIONS",
            "POST /api/leads/[leadId]/notes=/recipient/phone",
        ),
    ];
    let gw = setup::gateway(&settings(&sandbox, &extra)).await.unwrap();
    let ctx = setup::mcp_http(&settings(&sandbox, &extra)).await.unwrap();
    let (s, v) = call_gateway(
        &gw,
        Some(API_KEY),
        json!({"endpoint": "/apisms", "method": "POST",
        "body": {"to": "(202) 555-0188", "body": "Last chance!"}}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("OPTED_OUT")),
        "{v}"
    );
    let call = |id, name: &str, args: Value| {
        rpc(id, "tools/call", json!({"name": name, "arguments": args}))
    };
    let (_, _, v) = mcp(
        &ctx,
        "localhost",
        Some(API_KEY),
        call(1, "sms_sms_create", json!({"to": phone, "body": "hi"})),
    )
    .await;
    assert_eq!(
        v["result"]["structuredContent"]["error"]["code"], "OPTED_OUT",
        "{v}"
    );
    let (_, _, v) = mcp(
        &ctx,
        "localhost",
        Some(API_KEY),
        call(
            2,
            "post_integrations_df_middleware_send_m__f1a93aaa",
            json!({"body": {"to": phone}}),
        ),
    )
    .await;
    assert_eq!(
        v["result"]["structuredContent"]["error"]["code"], "OPTED_OUT",
        "{v}"
    );
    // A configured operation, its recipient by JSON pointer.
    let (_, _, v) = mcp(
        &ctx,
        "localhost",
        Some(API_KEY),
        call(
            3,
            "post_leads_by_leadid_notes",
            json!({"leadId": "l1", "body": {"recipient": {"phone": phone}}}),
        ),
    )
    .await;
    assert_eq!(
        v["result"]["structuredContent"]["error"]["code"], "OPTED_OUT",
        "{v}"
    );
    let (_, _, v) = mcp(
        &ctx,
        "localhost",
        Some(API_KEY),
        call(4, "sms_sms_create", json!({"body": "no recipient"})),
    )
    .await;
    assert_eq!(
        v["result"]["isError"], true,
        "a send we cannot check is refused: {v}"
    );
    assert!(
        requests(&sandbox).await.is_empty(),
        "nothing reached Verity"
    );
    // A number that never opted out goes through, on record like the refusals.
    let (s, _) = call_gateway(
        &gw,
        Some(API_KEY),
        json!({"endpoint": "/apisms", "method": "POST",
        "body": {"to": "+12025550199", "body": "Hello"}}),
    )
    .await;
    assert_eq!(s, 201);
    let sends: Vec<(String, String)> = db_client(&database)
        .await
        .query(
            "SELECT purpose, status FROM texting_sends ORDER BY created_at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        sends,
        [
            ("verity_gateway", "refused"),
            ("verity_mcp", "refused"),
            ("verity_mcp", "refused"),
            ("verity_mcp", "refused"),
            ("verity_gateway", "sent")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // What sends is annotated so: destructive, not idempotent.
    let (_, _, v) = mcp(
        &ctx,
        "localhost",
        Some(API_KEY),
        rpc(5, "tools/list", json!({})),
    )
    .await;
    let tool = |name: &str| {
        v["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()
            .clone()
    };
    for name in [
        "sms_sms_create",
        "post_calls_agents_by_agentid_test",
        "post_comms_broadcasts_by_id_send",
    ] {
        let a = &tool(name)["annotations"];
        assert_eq!(
            (
                a["destructiveHint"].as_bool(),
                a["idempotentHint"].as_bool()
            ),
            (Some(true), Some(false)),
            "{name}: {a}"
        );
    }
    let a = &tool("get_comms_broadcasts_by_id_stats")["annotations"];
    assert_eq!(
        (a["readOnlyHint"].as_bool(), a["idempotentHint"].as_bool()),
        (Some(true), Some(true)),
        "{a}"
    );
}

#[tokio::test]
async fn a_post_is_never_repeated_after_it_may_have_reached_verity_and_redirects_are_not_followed()
{
    let sandbox = df_sandbox::spawn(SandboxConfig::default()).await;
    let gw = setup::gateway(&settings(&sandbox, &[])).await.unwrap();
    sandbox_post(
        &sandbox,
        "faults",
        json!({"provider": "verity", "status": 503, "count": 1}),
    )
    .await;
    let (s, _) = call_gateway(
        &gw,
        Some(API_KEY),
        json!({"endpoint": "/api/comms/broadcasts", "method": "POST", "body": {"subject": "x"}}),
    )
    .await;
    assert_eq!(
        s, 503,
        "a 503 may come after the work: the POST is not sent again"
    );
    assert_eq!(requests(&sandbox).await.len(), 1);
    sandbox_post(
        &sandbox,
        "faults",
        json!({"provider": "verity", "status": 503, "count": 1}),
    )
    .await;
    let (s, _) = call_gateway(
        &gw,
        Some(API_KEY),
        json!({"endpoint": "/api/health", "method": "GET"}),
    )
    .await;
    assert_eq!(s, 200, "a GET is repeated");
    assert_eq!(requests(&sandbox).await.len(), 3);
    // Verity down (nothing listening): a POST is retried, as it cannot have arrived.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = setup::gateway(&settings(&format!("http://127.0.0.1:{closed}"), &[]))
        .await
        .unwrap();
    let (s, v) = call_gateway(
        &dead,
        Some(API_KEY),
        json!({"endpoint": "/api/comms/broadcasts", "method": "POST", "body": {"subject": "x"}}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (502, Some("PROXY_ERROR")),
        "{v}"
    );
    // A 3xx is answered as it is, not followed with our credential.
    sandbox_post(
        &sandbox,
        "faults",
        json!({"provider": "verity", "status": 307, "count": 1}),
    )
    .await;
    let (s, _) = call_gateway(
        &gw,
        Some(API_KEY),
        json!({"endpoint": "/api/health", "method": "GET"}),
    )
    .await;
    assert_eq!(s, 307);
    assert_eq!(
        requests(&sandbox).await.len(),
        4,
        "the redirect was not followed"
    );
}

#[test]
fn adding_endpoints_to_the_catalog_renames_and_repoints_no_tool() {
    let before = Toolset::new(example_catalog());
    let mut raw: Value =
        serde_json::from_str(&std::fs::read_to_string(catalog_path()).unwrap()).unwrap();
    let grown = raw["endpoints"].as_array_mut().unwrap();
    for (path, method) in [
        ("/api/comms-broadcasts", "GET"),
        ("/api/comms/broadcasts/by/id", "GET"),
        ("/api/Comms/Broadcasts", "GET"),
        (
            "/api/a/very/long/path/that/goes/on/and/on/for/ever/and/ever/and/ever",
            "GET",
        ),
        ("/api/admin/audit", "GET"),
    ] {
        grown.insert(0, json!({"path": path, "methods": [method]}));
    }
    let after = Toolset::new(Arc::new(Catalog::parse(&raw.to_string()).unwrap()));
    for tool in before.all() {
        let now = after
            .get(&tool.name)
            .unwrap_or_else(|| panic!("{} was renamed", tool.name));
        let (a, b) = (before.operation(tool), after.operation(now));
        assert_eq!(
            (a.method, &a.path),
            (b.method, &b.path),
            "{} was re-pointed",
            tool.name
        );
    }
    assert_eq!(after.all().len(), before.all().len() + 5);
    assert!(after.all().iter().all(|t| t.name.len() <= MAX_NAME_LEN));
}

#[tokio::test]
async fn a_browser_origin_not_allowed_is_refused() {
    let sandbox = df_sandbox::spawn(SandboxConfig::default()).await;
    let ctx = setup::mcp_http(&settings(
        &sandbox,
        &[("MCP_ALLOWED_ORIGINS", "https://agent.example.com")],
    ))
    .await
    .unwrap();
    let send = |origin: &'static str| {
        let ctx = &ctx;
        async move {
            let req = lambda_http::http::Request::builder()
                .method("POST")
                .uri("http://localhost/mcp")
                .header("host", "localhost")
                .header("origin", origin)
                .header("authorization", format!("Bearer {API_KEY}"))
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(Body::Text(rpc(1, "tools/list", json!({})).to_string()))
                .unwrap();
            mcp_http::handle(ctx, req).await.status().as_u16()
        }
    };
    assert_eq!(send("https://evil.example.com").await, 403);
    assert_eq!(send("https://agent.example.com").await, 200);
}
