#!/usr/bin/env python3
"""Lints every IAM policy in synthesized CloudFormation templates with parliament.

parliament checks each statement against the actions' documented resource types (AWS's
service authorization reference, bundled with it): a statement scoping an action to a
resource type the action does not support (RESOURCE_MISMATCH), unknown actions, bad
condition keys, and so on. ministack enforces no IAM, so this is the only check that can
see such a mistake before AWS does.

Intrinsic functions are resolved to concrete, well-formed ARNs first (an ARN of the right
service and resource type for each referenced resource), so parliament judges the shape of
every resource. A reference the resolver does not know fails the run: a policy that cannot
be read is never passed silently.

Usage: lint_iam.py <template-dir> [--account 111111111111] [--region eu-west-1]
Exit status 0 when no finding is left unexplained; findings allowed on purpose are listed
in ALLOWED below, each with its reason.
"""

import argparse
import json
import pathlib
import sys

from parliament import analyze_policy_string

# (issue, action) pairs accepted on purpose, each with the reason it is right.
ALLOWED: dict[tuple[str, str], str] = {}

# Trust and resource policies name principals, which parliament's identity-policy checks
# do not model; their resources are checked by the infra tests instead.
IDENTITY_POLICY_TYPES = {
    "AWS::IAM::Policy": ["PolicyDocument"],
    "AWS::IAM::ManagedPolicy": ["PolicyDocument"],
    "AWS::IAM::Role": ["Policies"],
}


class UnresolvableError(Exception):
    pass


# A real stream label is a timestamp with colons (2026-01-01T00:00:00.000); parliament refuses
# any colon in a resource id whose documented format has none, so the placeholder label keeps
# the shape without them. The resource type (table/*/stream/*) is what is being checked.
STREAM_LABEL = "2026-01-01T00-00-00.000"


class Resolver:
    def __init__(self, template: dict, account: str, region: str):
        self.resources = template.get("Resources", {})
        self.parameters = template.get("Parameters", {})
        self.account = account
        self.region = region

    def arn(self, service: str, resource: str, global_service: bool = False) -> str:
        region = "" if global_service else self.region
        return f"arn:aws:{service}:{region}:{self.account}:{resource}"

    def parameter_value(self, name: str) -> str:
        path = self.parameters[name].get("Default", name)
        if path.endswith("kinesis-stream-arn"):
            return self.arn("kinesis", "stream/fanout-users-changes")
        if path.endswith("stream-arn"):
            return self.arn("dynamodb", f"table/Users/stream/{STREAM_LABEL}")
        if path.endswith("arn"):
            raise UnresolvableError(f"SSM parameter {path} holds an ARN of unknown type")
        return "fanout-" + path.strip("/").replace("/", "-")

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::Partition": "aws",
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "FanoutStack",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameter_value(name)
        kind = self.resources.get(name, {}).get("Type")
        refs = {
            "AWS::SQS::Queue": lambda: f"https://sqs.{self.region}.amazonaws.com/{self.account}/{name}",
            "AWS::SNS::Topic": lambda: self.arn("sns", name),
            "AWS::DynamoDB::Table": lambda: name,
            "AWS::Logs::LogGroup": lambda: name,
            "AWS::Lambda::Function": lambda: name,
            "AWS::IAM::Role": lambda: name,
            "AWS::KMS::Key": lambda: "1234abcd-12ab-34cd-56ef-1234567890ab",
            "AWS::Kinesis::Stream": lambda: name,
            "AWS::Events::EventBus": lambda: name,
            "AWS::S3::Bucket": lambda: name.lower(),
        }
        if kind in refs:
            return refs[kind]()
        raise UnresolvableError(f"Ref {name} ({kind})")

    def get_att(self, name: str, attribute: str) -> str:
        kind = self.resources.get(name, {}).get("Type")
        arns = {
            ("AWS::SQS::Queue", "Arn"): lambda: self.arn("sqs", name),
            ("AWS::SQS::Queue", "QueueName"): lambda: name,
            ("AWS::Logs::LogGroup", "Arn"): lambda: self.arn("logs", f"log-group:{name}:*"),
            ("AWS::KMS::Key", "Arn"): lambda: self.arn("kms", "key/1234abcd-12ab-34cd-56ef-1234567890ab"),
            ("AWS::Lambda::Function", "Arn"): lambda: self.arn("lambda", f"function:{name}"),
            ("AWS::IAM::Role", "Arn"): lambda: f"arn:aws:iam::{self.account}:role/{name}",
            ("AWS::DynamoDB::Table", "Arn"): lambda: self.arn("dynamodb", f"table/{name}"),
            ("AWS::DynamoDB::Table", "StreamArn"): lambda: self.arn(
                "dynamodb", f"table/{name}/stream/{STREAM_LABEL}"
            ),
            ("AWS::Kinesis::Stream", "Arn"): lambda: self.arn("kinesis", f"stream/{name}"),
            ("AWS::Kinesis::StreamConsumer", "ConsumerARN"): lambda: self.arn(
                "kinesis", f"stream/users/consumer/{name}:1700000000"
            ),
            ("AWS::SNS::Topic", "TopicArn"): lambda: self.arn("sns", name),
            ("AWS::Events::EventBus", "Arn"): lambda: self.arn("events", f"event-bus/{name}"),
            # A bucket ARN has neither region nor account.
            ("AWS::S3::Bucket", "Arn"): lambda: f"arn:aws:s3:::{name.lower()}",
        }
        if (kind, attribute) in arns:
            return arns[(kind, attribute)]()
        raise UnresolvableError(f"Fn::GetAtt {name}.{attribute} ({kind})")

    def resolve(self, value):
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                name, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(name, attribute)
            if key == "Fn::Join":
                separator, parts = arg
                return separator.join(str(self.resolve(p)) for p in parts)
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(index)]
            if key == "Fn::Split":
                separator, text = arg
                return str(self.resolve(text)).split(separator)
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                for name, sub in variables.items():
                    text = text.replace("${" + name + "}", str(self.resolve(sub)))
                while "${" in text:
                    start = text.index("${")
                    end = text.index("}", start)
                    name = text[start + 2 : end]
                    if "." in name:
                        resource, attribute = name.split(".", 1)
                        replacement = self.get_att(resource, attribute)
                    else:
                        replacement = self.ref(name)
                    text = text[:start] + replacement + text[end + 1 :]
                return text
            if key.startswith("Fn::"):
                raise UnresolvableError(f"{key} is not supported by the IAM linter")
        return {k: self.resolve(v) for k, v in value.items()}


def policies(template: dict):
    """(where, document) for every identity policy in the template."""
    for logical_id, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        for field in IDENTITY_POLICY_TYPES.get(resource.get("Type"), []):
            if field == "Policies":
                for inline in properties.get("Policies", []):
                    yield f"{logical_id}/{inline.get('PolicyName')}", inline["PolicyDocument"]
            elif field in properties:
                yield logical_id, properties[field]


def findings_of(document: dict) -> list:
    analyzed = analyze_policy_string(json.dumps(document))
    return [(f.issue, f.detail) for f in analyzed.findings]


def self_check() -> None:
    """The linter must be able to fail: a ListStreams statement scoped to a table stream is
    the mistake it exists to catch."""
    wrong = {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": ["dynamodb:ListStreams"],
            "Resource": "arn:aws:dynamodb:eu-west-1:111111111111:table/Users/stream/*",
        }],
    }
    if not any(issue == "RESOURCE_MISMATCH" for issue, _ in findings_of(wrong)):
        sys.exit("lint_iam: self-check failed: parliament did not flag a mis-scoped ListStreams")


def allowed(issue: str, detail) -> bool:
    actions = [d.get("action") for d in detail] if isinstance(detail, list) and detail and isinstance(detail[0], dict) else []
    return bool(actions) and all((issue, a) in ALLOWED for a in actions)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=pathlib.Path)
    parser.add_argument("--account", default="111111111111")
    parser.add_argument("--region", default="eu-west-1")
    args = parser.parse_args()
    self_check()
    templates = sorted(args.directory.glob("*.template.json"))
    if not templates:
        print(f"lint_iam: no templates in {args.directory}", file=sys.stderr)
        return 2
    checked = 0
    problems = []
    for path in templates:
        template = json.loads(path.read_text())
        resolver = Resolver(template, args.account, args.region)
        for where, document in policies(template):
            try:
                resolved = resolver.resolve(document)
            except UnresolvableError as err:
                problems.append(f"{path.name} {where}: cannot resolve {err}")
                continue
            checked += 1
            for issue, detail in findings_of(resolved):
                if not allowed(issue, detail):
                    problems.append(f"{path.name} {where}: {issue} {json.dumps(detail)}")
    for problem in problems:
        print(f"lint_iam: {problem}", file=sys.stderr)
    print(f"lint_iam: {checked} identity policies in {len(templates)} templates, "
          f"{len(problems)} finding(s), {len(ALLOWED)} allowed by reason")
    return 1 if problems or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
