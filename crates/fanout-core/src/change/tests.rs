//! Decoding, plan diffing and field diffs, from the `events/` fixtures. Hermetic: no server.

use aws_lambda_events::dynamodb::{Event, EventRecord};
use fanout_testkit::fixture_text;

use crate::change::{Change, DecodeError, ImageSide, Remover, changed_attributes, item_key};
use crate::domain::{Plan, PlanChange, PlanDirection, User};

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
fn every_fixture_is_a_lambda_dynamodb_event_with_reportable_records() {
    let dir = fanout_testkit::fixture_path("");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let event: Event = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not a DynamoDB event: {e}", path.display()));
        assert!(!event.records.is_empty(), "{}: no records", path.display());
        for record in &event.records {
            assert!(
                !record.event_id.is_empty(),
                "{}: a record without eventID",
                path.display()
            );
            assert!(
                record
                    .change
                    .sequence_number
                    .as_deref()
                    .is_some_and(|s| !s.is_empty()),
                "{}: a record without SequenceNumber",
                path.display()
            );
            assert_eq!(record.event_source.as_deref(), Some("aws:dynamodb"));
            assert!(
                record
                    .event_source_arn
                    .as_deref()
                    .is_some_and(|a| a.contains(":table/Users/stream/"))
            );
        }
        seen += 1;
    }
    assert!(
        seen >= 12,
        "only {seen} fixtures found in {}",
        dir.display()
    );
}
