//! Decoding, plan diffing and field diffs, from the `events/` fixtures. Hermetic: no server.

use aws_lambda_events::dynamodb::{Event, EventRecord};
use fanout_testkit::fixture_text;

use crate::change::{Change, DecodeError, ImageSide, Remover, changed_attributes, item_key};
use crate::domain::{Plan, PlanChange, PlanDirection, User};
use crate::source::{RecordSource, read_record};

fn records(fixture: &str) -> Vec<EventRecord> {
    let event: Event =
        serde_json::from_str(&fixture_text(fixture)).expect("fixture parses as a DynamoDB event");
    event.records
}

fn only(fixture: &str) -> EventRecord {
    let mut all = records(fixture);
    assert_eq!(all.len(), 1, "{fixture} should hold one record");
    all.remove(0)
}

#[test]
fn modify_decodes_both_images() {
    let change = Change::<User>::from_record(&only("user-upgrade-free-to-pro.json")).unwrap();
    let Change::Modify {
        old: Some(old),
        new: Some(new),
    } = change
    else {
        panic!("expected a modify with both images");
    };
    assert_eq!(old.plan, Plan::Free);
    assert_eq!(new.plan, Plan::Pro);
    assert_eq!(new.version, 2);
    assert_eq!(new.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(new.email.as_str(), "u-1001@example.com");
}

#[test]
fn aws_record_shapes_decode_and_unknown_attributes_are_ignored() {
    let all = records("aws-record-shapes.json");
    // Binary, nested maps, lists, sets and unknown attributes beside the contract's fields.
    let change = Change::<User>::from_record(&all[0]).unwrap();
    let new = change.new_image().expect("new image");
    assert_eq!(new.user_id, "u-6006");
    assert_eq!(new.plan, Plan::Pro);
    assert_eq!(change.old().map(|u| u.version), Some(2));

    // The same images decode into a richer type too: the decoder is generic.
    #[derive(serde::Deserialize)]
    struct Rich {
        avatar: serde_bytes_like::Bytes,
        address: Address,
        tags: Vec<String>,
        scores: Vec<f64>,
    }
    #[derive(serde::Deserialize)]
    struct Address {
        city: String,
        zip: u32,
    }
    mod serde_bytes_like {
        /// DynamoDB binary arrives as bytes (base64 on the wire), not as a sequence.
        pub(super) struct Bytes(pub(super) Vec<u8>);
        impl<'de> serde::Deserialize<'de> for Bytes {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl serde::de::Visitor<'_> for Visitor {
                    type Value = Bytes;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("binary")
                    }
                    fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                        Ok(Bytes(v.to_vec()))
                    }
                    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                        Ok(Bytes(v))
                    }
                }
                d.deserialize_byte_buf(Visitor)
            }
        }
    }
    let rich = Change::<Rich>::from_record(&all[0]).unwrap();
    let rich = rich.new_image().unwrap();
    assert_eq!(
        rich.avatar.0,
        vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]
    );
    assert_eq!(rich.address.city, "Hampton");
    assert_eq!(rich.address.zip, 23666);
    assert_eq!(rich.tags, vec!["beta", "early"]);
    assert_eq!(rich.scores, vec![1.0, 2.5]);
}

#[test]
fn keys_only_record_has_absent_images() {
    let all = records("aws-record-shapes.json");
    let change = Change::<User>::from_record(&all[1]).unwrap();
    assert_eq!(change, Change::Insert { new: None });
    assert_eq!(item_key(&all[1].change.keys), "userId=u-6007");
    // No image, so no plan change can be derived (and none is invented).
    assert_eq!(PlanChange::from_change(&change), None);
}

#[test]
fn ttl_delete_is_recognised() {
    let change = Change::<User>::from_record(&only("user-ttl-delete.json")).unwrap();
    let Change::Remove { old: Some(old), by } = change else {
        panic!("expected a remove with an old image");
    };
    assert_eq!(by, Remover::Ttl);
    assert_eq!(old.user_id, "u-3003");
}

#[test]
fn application_delete_is_not_ttl() {
    let change = Change::<User>::from_record(&only("user-remove.json")).unwrap();
    assert!(matches!(
        change,
        Change::Remove {
            by: Remover::Application,
            ..
        }
    ));
}

#[test]
fn undecodable_image_names_record_and_attribute() {
    let record = only("poison-undecodable-image.json");
    let err = Change::<User>::from_record(&record).unwrap_err();
    match &err {
        DecodeError::Image {
            event_id,
            side,
            attribute,
            ..
        } => {
            assert_eq!(event_id, "8b9c0d1e2f3a4b4c5d6e7f8091a2b3c4");
            assert_eq!(*side, ImageSide::New);
            assert_eq!(attribute, "version");
        }
        other => panic!("unexpected error {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("8b9c0d1e2f3a4b4c5d6e7f8091a2b3c4") && text.contains("`version`"),
        "{text}"
    );
}

#[test]
fn missing_required_attribute_is_a_decode_error() {
    let mut record = only("user-insert-free.json");
    record.change.new_image.remove("email");
    let err = Change::<User>::from_record(&record).unwrap_err();
    assert!(err.to_string().contains("email"), "{err}");
}

#[test]
fn unknown_event_name_is_a_decode_error_not_a_panic() {
    let mut record = only("user-insert-free.json");
    record.event_name = "TTL".to_owned();
    let err = Change::<User>::from_record(&record).unwrap_err();
    assert!(matches!(err, DecodeError::UnknownEventName { .. }));
}

#[test]
fn unknown_plan_is_kept_not_rejected() {
    let change = Change::<User>::from_record(&only("user-unknown-plan.json")).unwrap();
    let plan = PlanChange::from_change(&change).unwrap();
    assert_eq!(plan.to, Some(Plan::Unknown("platinum".to_owned())));
    assert_eq!(plan.direction(), PlanDirection::Unranked);
    assert_eq!(plan.paid_upgrade(), None);
    assert_eq!(Plan::parse("platinum").rank(), None);
}

fn plan_change(fixture: &str) -> Option<PlanChange> {
    PlanChange::from_change(&Change::<User>::from_record(&only(fixture)).unwrap())
}

#[test]
fn plan_changes_from_fixtures() {
    let upgrade = plan_change("user-upgrade-free-to-pro.json").unwrap();
    assert_eq!(
        (upgrade.from.clone(), upgrade.to.clone()),
        (Some(Plan::Free), Some(Plan::Pro))
    );
    assert_eq!(upgrade.direction(), PlanDirection::Upgrade);
    assert_eq!(upgrade.paid_upgrade(), Some(&Plan::Pro));

    let downgrade = plan_change("user-downgrade-pro-to-free.json").unwrap();
    assert_eq!(downgrade.direction(), PlanDirection::Downgrade);
    assert_eq!(downgrade.paid_upgrade(), None);

    let insert = plan_change("user-insert-enterprise.json").unwrap();
    assert_eq!(insert.from, None);
    assert_eq!(insert.direction(), PlanDirection::Upgrade);
    assert_eq!(insert.paid_upgrade(), Some(&Plan::Enterprise));

    let free_insert = plan_change("user-insert-free.json").unwrap();
    assert_eq!(free_insert.paid_upgrade(), None);

    let remove = plan_change("user-remove.json").unwrap();
    assert_eq!(
        (remove.from.clone(), remove.to.clone()),
        (Some(Plan::Enterprise), None)
    );
    assert_eq!(remove.direction(), PlanDirection::Downgrade);

    // A modify that leaves the plan alone is no plan change.
    assert_eq!(plan_change("user-name-change.json"), None);
}

#[test]
fn enterprise_to_pro_is_a_downgrade_not_a_welcome() {
    let change = PlanChange {
        user_id: "u".into(),
        from: Some(Plan::Enterprise),
        to: Some(Plan::Pro),
    };
    assert_eq!(change.direction(), PlanDirection::Downgrade);
    assert_eq!(change.paid_upgrade(), None);
}

#[test]
fn field_diff_names_changed_top_level_attributes() {
    let record = only("user-name-change.json");
    let changed = changed_attributes(&record.change.old_image, &record.change.new_image);
    assert_eq!(
        changed.into_iter().collect::<Vec<_>>(),
        vec!["name", "updatedAt", "version"]
    );

    let record = only("user-upgrade-free-to-pro.json");
    let changed = changed_attributes(&record.change.old_image, &record.change.new_image);
    assert_eq!(
        changed.into_iter().collect::<Vec<_>>(),
        vec!["plan", "updatedAt", "version"]
    );

    // An insert: every attribute of the new image is "changed"; identical images: none.
    let record = only("user-insert-free.json");
    let changed = changed_attributes(&record.change.old_image, &record.change.new_image);
    assert_eq!(changed.len(), record.change.new_image.len());
    assert!(changed_attributes(&record.change.new_image, &record.change.new_image).is_empty());
}

#[test]
fn field_diff_compares_sets_as_sets() {
    use serde_dynamo::{AttributeValue, Item};
    let item = |tags: &[&str]| -> Item {
        std::collections::HashMap::from([(
            "tags".to_owned(),
            AttributeValue::Ss(tags.iter().map(|t| t.to_string()).collect()),
        )])
        .into()
    };
    assert!(changed_attributes(&item(&["a", "b"]), &item(&["b", "a"])).is_empty());
    assert_eq!(
        changed_attributes(&item(&["a"]), &item(&["a", "b"])).len(),
        1
    );
}

#[test]
fn user_debug_never_prints_the_email() {
    let change = Change::<User>::from_record(&only("user-upgrade-free-to-pro.json")).unwrap();
    let text = format!("{change:?}");
    assert!(!text.contains("example.com"), "{text}");
    assert!(!text.contains("Ada"), "{text}");
    assert!(text.contains("u-1001"));
}

#[test]
fn every_fixture_is_a_lambda_dynamodb_or_kinesis_event_with_reportable_records() {
    let dir = fanout_testkit::fixture_path("");
    let (mut streams, mut kinesis) = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let event: serde_json::Value = serde_json::from_str(&text).unwrap();
        let records = event["Records"].as_array().cloned().unwrap_or_default();
        assert!(!records.is_empty(), "{}: no records", path.display());
        for raw in &records {
            let read = read_record(raw);
            let record = read
                .record
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                !record.event_id.is_empty(),
                "{}: a record without eventID",
                path.display()
            );
            assert!(
                read.item_identifier.is_some_and(|s| !s.is_empty()),
                "{}: a record without a sequence number to report",
                path.display()
            );
            assert_eq!(record.event_source.as_deref(), Some("aws:dynamodb"));
            // Every fixture's change is of `Users`, but for `foreign-table-*.json`, whose
            // changes are of another table (and must be parked, never acted on).
            let foreign = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("foreign-table-"));
            match read.table.as_deref() {
                Some("Users") => assert!(!foreign, "{}", path.display()),
                Some(_) => assert!(foreign, "{}: names another table", path.display()),
                None => panic!("{}: a record that names no table", path.display()),
            }
            match read.source {
                RecordSource::DynamoDbStream => assert!(
                    record
                        .event_source_arn
                        .as_deref()
                        .is_some_and(|a| a.contains(":table/") && a.contains("/stream/")),
                    "{}",
                    path.display()
                ),
                RecordSource::Kinesis => {
                    assert_eq!(raw["eventSource"], "aws:kinesis", "{}", path.display());
                    assert!(record.change.sequence_number.is_none());
                }
            }
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("kinesis-") {
            kinesis += 1;
        } else {
            streams += 1;
        }
    }
    assert!(
        streams >= 12,
        "only {streams} DynamoDB fixtures in {}",
        dir.display()
    );
    assert!(
        kinesis >= 4,
        "only {kinesis} Kinesis fixtures in {}",
        dir.display()
    );
}

/// The Kinesis payloads carry the same change as their DynamoDB Streams counterpart and decode
/// into the same `Change<User>`: handlers cannot tell the sources apart.
#[test]
fn a_kinesis_record_decodes_into_the_same_change_as_its_stream_record() {
    let kinesis = |fixture: &str| -> Vec<EventRecord> {
        let event: serde_json::Value = serde_json::from_str(&fixture_text(fixture)).unwrap();
        event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|raw| read_record(raw).record.unwrap())
            .collect()
    };
    let stream = Change::<User>::from_record(&only("user-upgrade-free-to-pro.json")).unwrap();
    for fixture in [
        "kinesis-user-upgrade-free-to-pro.json",
        "kinesis-local-aws-streams-shaped.json",
    ] {
        let records = kinesis(fixture);
        let change = Change::<User>::from_record(&records[0]).unwrap();
        assert_eq!(change, stream, "{fixture}");
        assert_eq!(
            PlanChange::from_change(&change).unwrap().direction(),
            PlanDirection::Upgrade
        );
    }
    // AWS's shape: creation time in milliseconds, read as whole seconds of the same instant.
    let aws = &kinesis("kinesis-user-upgrade-free-to-pro.json")[0];
    assert_eq!(
        aws.change.approximate_creation_date_time.timestamp(),
        1_763_892_120
    );
    assert_eq!(aws.table_name.as_deref(), Some("Users"));

    let ttl = &kinesis("kinesis-user-ttl-delete.json")[0];
    let Change::Remove {
        by: Remover::Ttl, ..
    } = Change::<User>::from_record(ttl).unwrap()
    else {
        panic!("a TTL delete carried by Kinesis is a TTL removal");
    };
    assert_eq!(
        ttl.change.approximate_creation_date_time.timestamp(),
        1_763_895_900
    );
}
