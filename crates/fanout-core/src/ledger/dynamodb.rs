//! The ledger's entries in the `EffectLedger` table: one conditional request per step.
//!
//! Item: `pk` (the effect key), `status`, `owner`, `leaseUntil` (epoch ms, while in progress),
//! `expiresAt` (epoch s, the table's TTL attribute), `completedAt`, `attempts` (always 1: a
//! `PutItem` cannot count what it has not read).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::{
    ClaimOutcome, EffectKey, EntryStatus, LedgerClaim, LedgerEntry, LedgerError, LedgerStore,
};
use crate::failure::error_chain;
use crate::port::PortFuture;
use crate::time::{epoch_millis, epoch_secs};

const IN_PROGRESS: &str = EntryStatus::InProgress.as_str();
const COMPLETED: &str = EntryStatus::Completed.as_str();

/// The `EffectLedger` table as a [`LedgerStore`].
#[derive(Debug, Clone)]
pub struct DynamoDbLedger {
    client: Client,
    table: String,
}

impl DynamoDbLedger {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDbLedger {
            client,
            table: table.into(),
        }
    }

    async fn put_claim(
        &self,
        claim: &LedgerClaim,
        now: SystemTime,
        expires_at: SystemTime,
    ) -> Result<ClaimOutcome, LedgerError> {
        let key = &claim.key;
        let item = HashMap::from([
            ("pk".to_owned(), s(key.as_str())),
            ("status".to_owned(), s(IN_PROGRESS)),
            ("owner".to_owned(), s(&claim.owner)),
            ("leaseUntil".to_owned(), n(epoch_millis(claim.lease.until))),
            ("expiresAt".to_owned(), n(epoch_secs(expires_at).into())),
            ("attempts".to_owned(), n(1)),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR expiresAt < :nowSecs \
                 OR (#status = :inProgress AND leaseUntil < :nowMillis)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":nowSecs", n(epoch_secs(now).into()))
            .expression_attribute_values(":nowMillis", n(epoch_millis(now)))
            .expression_attribute_values(":inProgress", s(IN_PROGRESS))
            // On success, the replaced item (if any) tells us we took over a lapsed lease.
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => {
                let took_over_from = output.attributes().and_then(|old| {
                    (text(old, "status") == Some(IN_PROGRESS))
                        .then(|| text(old, "owner").unwrap_or_default().to_owned())
                });
                Ok(ClaimOutcome::Claimed(LedgerClaim {
                    took_over_from,
                    ..claim.clone()
                }))
            }
            Err(SdkError::ServiceError(err)) => match err.into_err() {
                PutItemError::ConditionalCheckFailedException(failed) => {
                    let old = failed.item.unwrap_or_default();
                    Ok(match text(&old, "status") {
                        Some(COMPLETED) => ClaimOutcome::AlreadyDone,
                        // The SDK resent our own PutItem after its response was lost: the
                        // entry is ours.
                        Some(IN_PROGRESS) if text(&old, "owner") == Some(claim.owner.as_str()) => {
                            ClaimOutcome::Claimed(claim.clone())
                        }
                        _ => ClaimOutcome::HeldByAnother {
                            lease_until: number(&old, "leaseUntil")
                                .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
                        },
                    })
                }
                other => Err(request_error("claim", key, &other)),
            },
            Err(other) => Err(request_error("claim", key, &other)),
        }
    }

    async fn update_completed(
        &self,
        claim: &LedgerClaim,
        now: SystemTime,
    ) -> Result<(), LedgerError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(claim.key.as_str()))
            .update_expression("SET #status = :completed, completedAt = :nowSecs REMOVE leaseUntil")
            .condition_expression("#owner = :owner AND #status = :inProgress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":inProgress", s(IN_PROGRESS))
            .expression_attribute_values(":owner", s(&claim.owner))
            .expression_attribute_values(":nowSecs", n(epoch_secs(now).into()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Err(SdkError::ServiceError(err)) => match err.into_err() {
                UpdateItemError::ConditionalCheckFailedException(failed) => {
                    let old = failed.item.unwrap_or_default();
                    if text(&old, "owner") == Some(claim.owner.as_str())
                        && text(&old, "status") == Some(COMPLETED)
                    {
                        Ok(())
                    } else {
                        Err(LedgerError::Fenced {
                            key: claim.key.to_string(),
                        })
                    }
                }
                other => Err(request_error("complete", &claim.key, &other)),
            },
            Err(other) => Err(request_error("complete", &claim.key, &other)),
            Ok(_) => Ok(()),
        }
    }

    async fn delete_claim(&self, claim: &LedgerClaim) -> Result<(), LedgerError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(claim.key.as_str()))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(&claim.owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if is_conditional_failure(&err) => Err(LedgerError::Fenced {
                key: claim.key.to_string(),
            }),
            Err(err) => Err(request_error("release", &claim.key, &err)),
        }
    }

    async fn get_entry(&self, key: &EffectKey) -> Result<Option<LedgerEntry>, LedgerError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| request_error("read", key, &e))?;
        Ok(output.item().and_then(|item| {
            let status = match text(item, "status")? {
                COMPLETED => EntryStatus::Completed,
                _ => EntryStatus::InProgress,
            };
            Some(LedgerEntry {
                status,
                owner: text(item, "owner").unwrap_or_default().to_owned(),
                lease_until: number(item, "leaseUntil")
                    .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
                expires_at: number(item, "expiresAt")
                    .map(|secs| UNIX_EPOCH + Duration::from_secs(secs)),
            })
        }))
    }
}

impl LedgerStore for DynamoDbLedger {
    fn name(&self) -> &str {
        &self.table
    }

    fn claim<'a>(
        &'a self,
        claim: &'a LedgerClaim,
        now: SystemTime,
        expires_at: SystemTime,
    ) -> PortFuture<'a, Result<ClaimOutcome, LedgerError>> {
        Box::pin(self.put_claim(claim, now, expires_at))
    }

    fn complete<'a>(
        &'a self,
        claim: &'a LedgerClaim,
        now: SystemTime,
    ) -> PortFuture<'a, Result<(), LedgerError>> {
        Box::pin(self.update_completed(claim, now))
    }

    fn release<'a>(&'a self, claim: &'a LedgerClaim) -> PortFuture<'a, Result<(), LedgerError>> {
        Box::pin(self.delete_claim(claim))
    }

    fn entry<'a>(
        &'a self,
        key: &'a EffectKey,
    ) -> PortFuture<'a, Result<Option<LedgerEntry>, LedgerError>> {
        Box::pin(self.get_entry(key))
    }
}

fn is_conditional_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata, R>(
    err: &SdkError<E, R>,
) -> bool {
    matches!(err, SdkError::ServiceError(service) if service.err().code() == Some("ConditionalCheckFailedException"))
}

fn request_error(
    operation: &'static str,
    key: &EffectKey,
    err: &dyn std::error::Error,
) -> LedgerError {
    LedgerError::Request {
        operation,
        key: key.to_string(),
        message: error_chain(err),
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: u128) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}
