"""welcome-email written the way a Python team would, with Powertools for AWS Lambda (Python) v3.

The peer `make bench` measures fanout's welcome-email against: the same job (one welcome
email per user and paid plan, ever), built from the documented Powertools pieces for a
DynamoDB Streams consumer: BatchProcessor with partial batch responses, an idempotent function
on the semantic key `welcome-email#<userId>#<plan>` in a DynamoDB persistence layer, boto3's
SESv2 client, the Logger and Metrics utilities.
"""

import os

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

PAID = ("pro", "enterprise")
RANK = {"free": 0, "pro": 1, "enterprise": 2}

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
persistence = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE"])
idempotency = IdempotencyConfig(event_key_jmespath="key", expires_after_seconds=400 * 24 * 3600)
ses = boto3.client("sesv2")
FROM_ADDRESS = os.environ["FROM_ADDRESS"]


def paid_upgrade(record: DynamoDBRecord):
    """The paid plan a record moves its user to, or None."""
    new = record.dynamodb.new_image or {}
    plan = new.get("plan")
    if plan not in PAID:
        return None
    if record.event_name == DynamoDBRecordEventName.INSERT:
        return plan
    if record.event_name == DynamoDBRecordEventName.MODIFY:
        old = (record.dynamodb.old_image or {}).get("plan")
        if RANK.get(plan, 0) > RANK.get(old, 0):
            return plan
    return None


@idempotent_function(data_keyword_argument="welcome", config=idempotency, persistence_store=persistence)
def send_welcome(welcome: dict) -> str:
    plan_name = welcome["plan"].capitalize()
    name = welcome.get("name")
    greeting = f"Hello {name}," if name else "Hello,"
    response = ses.send_email(
        FromEmailAddress=FROM_ADDRESS,
        Destination={"ToAddresses": [welcome["email"]]},
        Content={
            "Simple": {
                "Subject": {"Data": f"Welcome to {plan_name}", "Charset": "UTF-8"},
                "Body": {
                    "Text": {
                        "Data": f"{greeting}\n\nthank you for moving to the {plan_name} plan. "
                        "Everything it includes is ready for you now.\n",
                        "Charset": "UTF-8",
                    }
                },
            }
        },
    )
    logger.info("welcome email sent", extra={"user_id": welcome["user_id"], "plan": welcome["plan"],
                                             "message_id": response["MessageId"]})
    metrics.add_metric(name="WelcomeEmailsSent", unit=MetricUnit.Count, value=1)
    return response["MessageId"]


def record_handler(record: DynamoDBRecord):
    plan = paid_upgrade(record)
    if plan is None:
        logger.debug("not a move to a paid plan", extra={"event_id": record.event_id})
        return
    user = record.dynamodb.new_image
    send_welcome(welcome={
        "key": f"welcome-email#{user['userId']}#{plan}",
        "user_id": user["userId"],
        "email": user["email"],
        "name": user.get("name"),
        "plan": plan,
    })


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict, context: LambdaContext):
    idempotency.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
