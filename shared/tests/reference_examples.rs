//! Classification over the providers' own data in `../shared/reference/` (the steering
//! repository's copy). Skips, saying so, where a checkout has no such directory.
mod common;

use std::collections::HashSet;

use df_shared::domain::aloware_webhook::{self as aloware, AlowareWebhook};
use df_shared::domain::{ghl_webhook as ghl, EntityType};
use serde_json::Value;

fn reference_or_skip(test: &str) -> Option<std::path::PathBuf> {
    let dir = common::reference_dir();
    if dir.is_none() {
        eprintln!("SKIPPED {test}: ../shared/reference is absent (set DF_REFERENCE_DIR to run it)");
    }
    dir
}

/// What each GHL event family is about, by the example file's name.
fn expected_entity(file: &str) -> EntityType {
    const BY_PREFIX: &[(&str, EntityType)] = &[
        ("AppInstall", EntityType::App),
        ("AppUninstall", EntityType::App),
        ("PlanChange", EntityType::App),
        ("Appointment", EntityType::Appointment),
        ("Association", EntityType::Association),
        ("CampaignStatus", EntityType::Campaign),
        ("ContactTagUpdate", EntityType::Tag),
        ("Contact", EntityType::Contact),
        ("ConversationUnread", EntityType::Conversation),
        ("InboundMessage", EntityType::Message),
        ("OutboundMessage", EntityType::Message),
        ("ProviderOutboundMessage", EntityType::Message),
        ("Invoice", EntityType::Invoice),
        ("LCEmailStats", EntityType::Email),
        ("Location", EntityType::Location),
        ("Note", EntityType::Note),
        ("ObjectSchema", EntityType::ObjectSchema),
        ("Opportunity", EntityType::Opportunity),
        ("Order", EntityType::Order),
        ("Product", EntityType::Product),
        ("Price", EntityType::Price),
        ("Record", EntityType::Record),
        ("Relation", EntityType::Relation),
        ("Task", EntityType::Task),
        ("User", EntityType::User),
    ];
    BY_PREFIX
        .iter()
        .find(|(p, _)| file.starts_with(p))
        .map(|(_, e)| *e)
        .unwrap_or_else(|| panic!("{file}: no expectation for this event family; add one"))
}

#[test]
fn every_ghl_example_classifies_to_its_entity_and_id() {
    let Some(dir) = reference_or_skip("every_ghl_example_classifies_to_its_entity_and_id") else {
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(dir.join("ghl/webhooks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .contains(".example")
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 60,
        "expected the ~67 GHL examples, found {}",
        files.len()
    );
    // GHL's docs reuse byte-identical bodies across pages (Create/Update/Delete):
    // identical bytes are one delivery, so compare distinct bodies only.
    let mut keys = HashSet::new();
    let mut bodies = HashSet::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let raw = std::fs::read(path).unwrap();
        let payload: Value = serde_json::from_slice(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        let w = ghl::classify(&payload, &raw, "US").unwrap_or_else(|e| panic!("{name}: {e}"));
        let c = &w.classified;
        assert_eq!(c.entity_type, expected_entity(&name), "{name}: entity type");
        let id = c
            .entity_id
            .as_deref()
            .unwrap_or_else(|| panic!("{name}: no entity id"));
        assert!(
            String::from_utf8_lossy(&raw).contains(&format!("\"{id}\"")),
            "{name}: entity id {id} is not a value of the example"
        );
        assert!(!c.event_type.is_empty(), "{name}: event type");
        keys.insert(w.dedupe_key.stored());
        bodies.insert(raw);
    }
    assert_eq!(
        keys.len(),
        bodies.len(),
        "distinct bodies must not share a dedupe key"
    );
}

#[test]
fn ghl_examples_pick_the_documented_ids() {
    let Some(dir) = reference_or_skip("ghl_examples_pick_the_documented_ids") else {
        return;
    };
    let check = |file: &str, entity: &str, person: Option<&str>| {
        let raw = std::fs::read(dir.join("ghl/webhooks").join(file)).unwrap();
        let w = ghl::classify(&serde_json::from_slice(&raw).unwrap(), &raw, "US").unwrap();
        assert_eq!(w.classified.entity_id.as_deref(), Some(entity), "{file}");
        let ghl_person = w
            .classified
            .person
            .ghl_contact_id
            .as_ref()
            .map(|id| format!("ghl:{id}"));
        assert_eq!(ghl_person.as_deref(), person, "{file}");
    };
    check(
        "ContactCreate.example.json",
        "nmFmQEsNgz6AVpgLVUJ0",
        Some("ghl:nmFmQEsNgz6AVpgLVUJ0"),
    );
    check(
        "ContactTagUpdate.example.json",
        "nmFmQEsNgz6AVpgLVUJ0",
        Some("ghl:nmFmQEsNgz6AVpgLVUJ0"),
    );
    check(
        "InboundMessage.example.2.json",
        "tyW42xCD0HQpb3hhfLcx",
        Some("ghl:gblakL5aYQC4glDtP1r2t3"),
    );
    let appointment: Value = serde_json::from_slice(
        &std::fs::read(dir.join("ghl/webhooks/AppointmentCreate.example.json")).unwrap(),
    )
    .unwrap();
    let appointment_id = appointment["appointment"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let raw = serde_json::to_vec(&appointment).unwrap();
    assert_eq!(
        ghl::classify(&appointment, &raw, "US")
            .unwrap()
            .classified
            .entity_id,
        Some(appointment_id)
    );
}

fn aloware_event(payload: &Value) -> (df_shared::domain::Classified, String) {
    let raw = serde_json::to_vec(payload).unwrap();
    match aloware::classify(payload, &raw, "US").unwrap() {
        AlowareWebhook::Event {
            classified,
            dedupe_key,
        } => (classified, dedupe_key.stored()),
        AlowareWebhook::TestPing => panic!("unexpected test ping"),
    }
}

fn aloware_sample(dir: &std::path::Path, file: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("aloware").join(file)).unwrap()).unwrap()
}

#[test]
fn aloware_call_lifecycle_classifies_step_by_step() {
    let Some(dir) = reference_or_skip("aloware_call_lifecycle_classifies_step_by_step") else {
        return;
    };
    let steps = aloware_sample(&dir, "webhook_call_lifecycle_captured_shape.json");
    let got: Vec<_> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(aloware_event)
        .collect();
    let types: Vec<_> = got.iter().map(|(c, _)| c.entity_type).collect();
    assert_eq!(
        types,
        [
            EntityType::Call,
            EntityType::Call,
            EntityType::Recording,
            EntityType::Transcription
        ]
    );
    for (c, _) in &got {
        assert_eq!(
            c.entity_id.as_deref(),
            Some("940868616"),
            "{}",
            c.event_type
        );
    }
    let keys: HashSet<_> = got.iter().map(|(_, k)| k.clone()).collect();
    assert_eq!(
        keys.len(),
        4,
        "initiation, disposition, recording and summary are four deliveries"
    );
    assert_eq!(
        got[0].0.person.fallback_key().as_deref(),
        Some("+12025550177"),
        "no contact id: the lead's phone"
    );
    // The summary names only the contact and the call: the store gives it the key of
    // the call's first event (adapters::event_store), so all four share one group.
    assert_eq!(
        got[3].0.person.aloware_contact_id.as_deref(),
        Some("155091981")
    );
    assert!(got
        .iter()
        .all(|(c, _)| c.person.call_id.as_deref() == Some("940868616")));
}

#[test]
fn aloware_documented_and_zapier_samples_classify() {
    let Some(dir) = reference_or_skip("aloware_documented_and_zapier_samples_classify") else {
        return;
    };
    let (c, _) = aloware_event(&aloware_sample(
        &dir,
        "webhook_envelope_outbound_call_disposition_completed_documented.json",
    ));
    assert_eq!(
        (c.entity_type, c.entity_id.as_deref()),
        (EntityType::Call, Some("54363660"))
    );
    assert_eq!(c.person.aloware_contact_id.as_deref(), Some("6896898"));

    let (c, _) = aloware_event(&aloware_sample(
        &dir,
        "webhook_call_summarized_documented_excerpt.json",
    ));
    assert_eq!(
        (c.entity_type, c.entity_id.as_deref()),
        (EntityType::Transcription, Some("373640"))
    );

    let ping = aloware_sample(&dir, "webhook_test_payload.json");
    assert_eq!(
        aloware::classify(&ping, b"", "US"),
        Ok(AlowareWebhook::TestPing)
    );

    // Zapier labels this call "OutboundSMS-...": Type 1 wins over the name.
    let zapier = aloware_sample(&dir, "webhook_zapier_call_disposed_two_posts.json");
    let ringing = zapier["ringing_post"].clone();
    let (c, ringing_key) = aloware_event(&ringing);
    assert_eq!(
        (c.entity_type, c.entity_id.as_deref()),
        (EntityType::Call, Some("985097163"))
    );
    assert_eq!(c.person.aloware_contact_id.as_deref(), Some("169745494"));
    let mut completed = ringing.clone();
    for (k, v) in zapier["completed_post_fields_that_differ"]
        .as_object()
        .unwrap()
    {
        completed[k] = v.clone();
    }
    let (_, completed_key) = aloware_event(&completed);
    assert_ne!(
        ringing_key, completed_key,
        "the completed post is a new disposition state"
    );
}
