//! The sandbox behaves like the providers where the middleware depends on it, and no
//! kinder: GHL requests are validated against GHL's OpenAPI (from ../shared/reference),
//! violations are answered as GHL answers them and recorded.
use df_sandbox::{spawn, SandboxConfig};
use serde_json::{json, Value};

async fn violations(base: &str) -> Vec<Value> {
    reqwest::get(format!("{base}/_sandbox/violations"))
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap()
}

/// The tests that need GHL's OpenAPI skip, saying so, without `../shared/reference`
/// (under CI=true the sandbox refuses to start without it).
fn openapi_loaded(config: &SandboxConfig) -> bool {
    if config.openapi.is_none() {
        eprintln!("SKIPPED: ../shared/reference is absent: no OpenAPI validation to test");
    }
    config.openapi.is_some()
}

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
    assert_eq!(violations(&base).await.len(), 1, "and recorded");
    for left in (0..4).rev() {
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
    assert_eq!(r["statusCode"], 422, "{r}");
    assert!(
        r["message"][0].as_str().unwrap().contains("locationId"),
        "422 with GHL's message array: {r}"
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
    let duplicate = ghl(&c, reqwest::Method::POST, format!("{base}/ghl/contacts/"))
        .json(&json!({"locationId": "L", "phone": "+12025550100"}))
        .send()
        .await
        .unwrap();
    assert_eq!(duplicate.status(), 400);
    let duplicate: Value = duplicate.json().await.unwrap();
    assert_eq!(
        duplicate,
        json!({"statusCode": 400, "message": "This location does not allow duplicated contacts."}),
        "a create may not duplicate a contact (the location default), refused with the body GHL documents (BadRequestDTO: no id)"
    );
    assert_eq!(
        again["contact"]["tags"],
        json!(["hot lead"]),
        "tags are stored lower-case, and kept when the upsert sends none"
    );
    let overwritten: Value =
        upsert(json!({"locationId": "L", "phone": "+12025550100", "tags": ["vip"]}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(
        overwritten["contact"]["tags"],
        json!(["vip"]),
        "upsert tags overwrite all tags (UpsertContactDto.tags)"
    );
    upsert(json!({"locationId": "L", "phone": "+12025550100", "tags": ["hot lead"]}))
        .await
        .unwrap();
    let search = |page: u32| {
        ghl(&c, reqwest::Method::POST, format!("{base}/ghl/contacts/search"))
            .json(&json!({"locationId": "L", "page": page, "pageLimit": 2, "filters": [{"field": "tags", "operator": "contains", "value": "hot lead"}]}))
            .send()
    };
    // GHL's search trails its writes: nothing written a moment ago is found yet.
    let early: Value = search(1).await.unwrap().json().await.unwrap();
    assert_eq!(early["total"], 0, "{early}");
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
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
    let created = forms(json!({"api_token": "sandbox-aloware-token", "phone_number": "8186006750", "first_name": "A", "last_name": "Z"})).await.unwrap();
    assert_eq!(created.status(), 201);
    let refused = forms(json!({"api_token": "sandbox-aloware-token", "phone_number": "+18186006750", "first_name": "B"})).await.unwrap();
    assert_eq!(
        refused.status(),
        409,
        "an existing contact without force_update"
    );
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
        "the refused write changed nothing"
    );
    forms(json!({"api_token": "sandbox-aloware-token", "phone_number": "8186006750", "first_name": "B", "force_update": true})).await.unwrap();
    let found: Value = lookup("8186006750").await.unwrap().json().await.unwrap();
    assert_eq!(
        (found["first_name"].as_str(), found["last_name"].as_str()),
        (Some("B"), Some("Z")),
        "force_update overwrites only the fields it is given"
    );
    assert_eq!(lookup("2025550000").await.unwrap().status(), 404);
    assert_eq!(lookup("").await.unwrap().status(), 400);
    let recorded = violations(&base).await;
    assert_eq!(recorded.len(), 1, "the undocumented path: {recorded:?}");
    assert_eq!(recorded[0]["path"], "/aloware/api/v1/calls/1");
}

#[tokio::test]
async fn ghl_requests_are_validated_against_the_openapi() {
    let config = SandboxConfig::default();
    if !openapi_loaded(&config) {
        return;
    }
    let base = spawn(config).await;
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
    // A custom field by key alone: every customFields schema requires `id`.
    let r = upsert(
        json!({"locationId": "sandbox-location", "phone": "+12025550100",
        "customFields": [{"key": "lead_source", "field_value": "Ads"}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["statusCode"].as_u64(), body["error"].as_str()),
        (Some(422), Some("Unprocessable Entity"))
    );
    assert!(body["message"].is_array(), "{body}");
    // A property GHL's DTO does not have.
    assert_eq!(
        upsert(json!({"locationId": "sandbox-location", "phone": "+12025550100", "favouriteColour": "red"}))
            .await
            .unwrap()
            .status(),
        422
    );
    // A `dndSettings` status outside the enum.
    assert_eq!(
        upsert(json!({"locationId": "sandbox-location", "dndSettings": {"SMS": {"status": "on"}}}))
            .await
            .unwrap()
            .status(),
        422
    );
    // A route GHL does not have.
    let r = ghl(
        &c,
        reqwest::Method::POST,
        format!("{base}/ghl/contacts/c1/everything"),
    )
    .json(&json!({}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
    // The conversations API wants its own Version.
    let r = c
        .post(format!("{base}/ghl/conversations/messages/inbound"))
        .bearer_auth("sandbox-ghl-token")
        .header("Version", "2021-07-28")
        .json(&json!({"type": "SMS", "contactId": "c1", "conversationId": "x", "conversationProviderId": "p"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(violations(&base).await.len(), 5);
    // A conforming request passes and is not recorded.
    let r =
        upsert(json!({"locationId": "sandbox-location", "phone": "+12025550100", "email": null}))
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(violations(&base).await.len(), 5);
}

#[tokio::test]
async fn custom_fields_have_opaque_ids_and_dnd_settings_are_replaced_whole() {
    let base = spawn(SandboxConfig::default()).await;
    let c = reqwest::Client::new();
    let fields: Value = ghl(
        &c,
        reqwest::Method::GET,
        format!("{base}/ghl/locations/sandbox-location/customFields?model=contact"),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let lead = fields["customFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["fieldKey"] == "contact.lead_source")
        .expect("a set-up location has the sync's fields")
        .clone();
    let id = lead["id"].as_str().unwrap();
    assert_ne!(id, "lead_source", "ids are opaque, not keys");
    let created: Value = ghl(
        &c,
        reqwest::Method::POST,
        format!("{base}/ghl/contacts/upsert"),
    )
    .json(
        &json!({"locationId": "sandbox-location", "phone": "+12025550109",
            "customFields": [{"id": id, "field_value": "Ads"}],
            "dndSettings": {"SMS": {"status": "active"}, "Call": {"status": "active"}}}),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let contact = &created["contact"];
    assert_eq!(
        contact["customFields"],
        json!([{"id": id, "value": "Ads"}]),
        "read back as {{id, value}}"
    );
    let cid = contact["id"].as_str().unwrap();
    // Unknown ids are refused.
    let r = ghl(
        &c,
        reqwest::Method::PUT,
        format!("{base}/ghl/contacts/{cid}"),
    )
    .json(&json!({"customFields": [{"id": "no-such-field", "field_value": "x"}]}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 422);
    // A partial dndSettings replaces the whole object: the SMS channel is gone.
    let put: Value = ghl(
        &c,
        reqwest::Method::PUT,
        format!("{base}/ghl/contacts/{cid}"),
    )
    .json(&json!({"dndSettings": {"Call": {"status": "inactive"}}}))
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        put["contact"]["dndSettings"],
        json!({"Call": {"status": "inactive"}})
    );
    // A new field, created by name, gets an opaque id and a `contact.` key.
    let made: Value = ghl(
        &c,
        reqwest::Method::POST,
        format!("{base}/ghl/locations/sandbox-location/customFields"),
    )
    .json(&json!({"name": "df_extra", "dataType": "TEXT", "model": "contact"}))
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(made["customField"]["fieldKey"], "contact.df_extra");
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
