//! The sandbox behaves like the providers where the middleware depends on it.
use df_sandbox::{spawn, SandboxConfig};
use serde_json::{json, Value};

fn ghl(client: &reqwest::Client, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
    client
        .request(method, url)
        .bearer_auth("sandbox-ghl-token")
        .header("Version", "2021-07-28")
}

#[tokio::test]
async fn ghl_checks_token_and_version_and_reports_rate_limits() {
    let base = spawn(SandboxConfig {
        ghl_rate_max: 5,
        ..SandboxConfig::default()
    })
    .await;
    let c = reqwest::Client::new();
    let url = format!("{base}/ghl/contacts/nope");
    let r = c
        .get(&url)
        .header("Version", "2021-07-28")
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["message"],
        "Invalid token: access token is invalid"
    );
    let r = c
        .get(&url)
        .bearer_auth("sandbox-ghl-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "Version header required");
    for left in (0..5).rev() {
        let r = ghl(&c, reqwest::Method::GET, url.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers()["x-ratelimit-remaining"],
            left.to_string().as_str()
        );
        assert_eq!(r.headers()["x-ratelimit-max"], "5");
    }
    let r = ghl(&c, reqwest::Method::GET, url.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-ratelimit-interval-milliseconds"], "10000");
}

#[tokio::test]
async fn ghl_contacts_upsert_tags_notes_and_paginated_search() {
    let base = spawn(SandboxConfig::default()).await;
    let c = reqwest::Client::new();
    let upsert = |body: Value| {
        ghl(
            &c,
            reqwest::Method::POST,
            format!("{base}/ghl/contacts/upsert"),
        )
        .json(&body)
        .send()
    };
    let r: Value = upsert(json!({"phone": "+12025550100"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        r["message"][0], "locationId should not be empty",
        "422 with message array: {r}"
    );
    let mut ids = Vec::new();
    for i in 0..5 {
        let r: Value = upsert(
            json!({"locationId": "L", "phone": format!("+1202555010{i}"), "tags": ["Hot Lead"]}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(r["new"], true);
        ids.push(r["contact"]["id"].as_str().unwrap().to_string());
    }
    let again: Value =
        upsert(json!({"locationId": "L", "phone": "+12025550100", "firstName": "Ann"}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(
        (again["new"].clone(), again["contact"]["id"].clone()),
        (json!(false), json!(ids[0])),
        "upsert matches by phone"
    );
    assert_eq!(
        again["contact"]["tags"],
        json!(["hot lead"]),
        "tags are stored lower-case"
    );
    let search = |page: u32| {
        ghl(&c, reqwest::Method::POST, format!("{base}/ghl/contacts/search"))
            .json(&json!({"locationId": "L", "page": page, "pageLimit": 2, "filters": [{"field": "tags", "operator": "contains", "value": "hot lead"}]}))
            .send()
    };
    let mut seen = 0;
    for page in 1..=3 {
        let r: Value = search(page).await.unwrap().json().await.unwrap();
        assert_eq!(r["total"], 5);
        seen += r["contacts"].as_array().unwrap().len();
    }
    assert_eq!(seen, 5, "pages cover every match once");
    let put: Value = ghl(
        &c,
        reqwest::Method::PUT,
        format!("{base}/ghl/contacts/{}", ids[1]),
    )
    .json(&json!({"tags": ["only"]}))
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        put["contact"]["tags"],
        json!(["only"]),
        "PUT replaces all tags, as GHL does"
    );
    let note: Value = ghl(
        &c,
        reqwest::Method::POST,
        format!("{base}/ghl/contacts/{}/notes", ids[0]),
    )
    .json(&json!({"body": "first"}))
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let note_id = note["note"]["id"].as_str().unwrap();
    ghl(
        &c,
        reqwest::Method::PUT,
        format!("{base}/ghl/contacts/{}/notes/{note_id}", ids[0]),
    )
    .json(&json!({"body": "second"}))
    .send()
    .await
    .unwrap();
    let notes: Value = ghl(
        &c,
        reqwest::Method::GET,
        format!("{base}/ghl/contacts/{}/notes", ids[0]),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(notes["notes"].as_array().unwrap().len(), 1);
    assert_eq!(notes["notes"][0]["body"], "second");
}

#[tokio::test]
async fn aloware_answers_unknown_paths_with_html_and_keys_contacts_by_phone() {
    let base = spawn(SandboxConfig::default()).await;
    let c = reqwest::Client::new();
    let r = c
        .get(format!("{base}/aloware/api/v1/calls/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let forms = |body: Value| {
        c.post(format!("{base}/aloware/api/v1/webhook/forms"))
            .json(&body)
            .send()
    };
    assert_eq!(
        forms(json!({"api_token": "wrong", "phone_number": "8186006750"}))
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        forms(json!({"api_token": "sandbox-aloware-token"}))
            .await
            .unwrap()
            .status(),
        422
    );
    let created = forms(json!({"api_token": "sandbox-aloware-token", "phone_number": "8186006750", "first_name": "A"})).await.unwrap();
    assert_eq!(created.status(), 201);
    let kept = forms(json!({"api_token": "sandbox-aloware-token", "phone_number": "+18186006750", "first_name": "B"})).await.unwrap();
    assert_eq!(kept.status(), 200);
    let lookup = |phone: &str| {
        c.get(format!("{base}/aloware/api/v1/webhook/contact/phone-number?api_token=sandbox-aloware-token&phone_number={phone}")).send()
    };
    let found: Value = lookup("%2B18186006750")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        found["first_name"], "A",
        "without force_update a set value is kept"
    );
    forms(json!({"api_token": "sandbox-aloware-token", "phone_number": "8186006750", "first_name": "B", "force_update": true})).await.unwrap();
    let found: Value = lookup("8186006750").await.unwrap().json().await.unwrap();
    assert_eq!(found["first_name"], "B");
    assert_eq!(lookup("2025550000").await.unwrap().status(), 404);
    assert_eq!(lookup("").await.unwrap().status(), 400);
}

#[tokio::test]
async fn faults_fail_the_next_requests_then_clear() {
    let base = spawn(SandboxConfig::default()).await;
    let c = reqwest::Client::new();
    c.post(format!("{base}/_sandbox/faults"))
        .json(&json!({"provider": "texting", "status": 503, "count": 2}))
        .send()
        .await
        .unwrap();
    let send = || {
        c.post(format!("{base}/texting/messages"))
            .bearer_auth("sandbox-texting-key")
            .json(&json!({"to": "+12025550100", "from": "+12025550101", "body": "hi"}))
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 503);
    assert_eq!(send().await.unwrap().status(), 503);
    let ok: Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(ok["status"], "queued");
    let log: Value = c
        .get(format!("{base}/_sandbox/requests?provider=texting"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let statuses: Vec<u64> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [503, 503, 201]);
}
