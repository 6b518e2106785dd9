// infra/consumers/ is the one registry: a consumer declared there (and nowhere else in the
// CDK app) gets a whole stack from the generic ConsumerStack.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import * as cdk from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../lib/app';
import { CONSUMER_STACKS } from '../lib/consumers';
import { consumerManifest, WORKSPACE_ROOT } from '../lib/stream-consumer';
import { cdkJsonContext, EXAMPLE_CONTEXT, loadSettings, REGISTRY_DIR } from '../lib/settings';

/** The shipped registry plus one consumer, `Reporter`, that exists only in this test. */
function registryWithReporter(overrides: Record<string, unknown> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fanout-registry-'));
  for (const file of fs.readdirSync(REGISTRY_DIR)) fs.copyFileSync(path.join(REGISTRY_DIR, file), path.join(dir, file));
  const template = JSON.parse(fs.readFileSync(path.join(REGISTRY_DIR, 'crm-sync.json'), 'utf8'));
  const reporter = {
    ...template,
    stack: 'Reporter',
    crate: 'reporter',
    ledgerKeyPrefix: 'reporter',
    environment: {
      required: ['USERS_TABLE', 'LEDGER_TABLE', 'DLQ_URL', 'REPORT_BUS'],
      optional: ['MAX_CONCURRENCY', 'STREAM_VIEW_TYPE', 'LEDGER_RETENTION_HOURS'],
      fromContext: { REPORT_BUS: 'crmEventBusName' },
    },
    ...overrides,
  };
  fs.writeFileSync(path.join(dir, 'reporter.json'), JSON.stringify(reporter));
  return dir;
}

describe('a fifth consumer declared only in the registry', () => {
  assert.equal(CONSUMER_STACKS.Reporter, undefined, 'the test consumer must have no stack class of its own');
  const app = new cdk.App({ context: { ...cdkJsonContext(), ...EXAMPLE_CONTEXT, 'aws:cdk:bundling-stacks': [] } });
  const built = buildApp(app, { account: '111111111111', region: 'eu-west-1' }, registryWithReporter());
  app.synth();
  const stack = built.consumers.Reporter;
  const template = Template.fromStack(stack);

  it('gets a stack from the generic ConsumerStack, beside the shipped ones', () => {
    assert.ok(stack, 'no Reporter stack');
    assert.equal(Object.keys(built.consumers).length, Object.keys(loadSettings()).length + 1);
  });

  it('runs its own binary with the environment its settings name', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Description: 'fanout reporter',
      Environment: { Variables: Match.objectLike({ REPORT_BUS: 'crm', LEDGER_TABLE: Match.anyValue(), DLQ_URL: Match.anyValue() }) },
    });
  });

  it('maps the stream with its settings and writes only its own ledger keys', () => {
    template.resourceCountIs('AWS::Lambda::EventSourceMapping', 1);
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Sid: 'OwnLedgerEntriesOnly', Condition: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['reporter#*'] } } }),
        ]),
      },
    });
  });

  it('passes cdk-nag like the others', () => {
    const findings = [
      ...Annotations.fromStack(stack).findError('*', Match.stringLikeRegexp('AwsSolutions-.*')),
      ...Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*')),
    ];
    assert.deepEqual(findings.map((f) => f.entry.data), []);
  });
});

describe("a ledger entry outlives its consumer's source", () => {
  const synth = (overrides: Record<string, unknown>, extra: Record<string, string> = {}) => () => {
    const app = new cdk.App({ context: { ...cdkJsonContext(), ...EXAMPLE_CONTEXT, ...extra, 'aws:cdk:bundling-stacks': [] } });
    buildApp(app, { account: '111111111111', region: 'eu-west-1' }, registryWithReporter(overrides));
  };
  const kinesis = { source: 'kinesis', sourceWhy: 'test', ledger: { retentionDays: 2, why: 'test' } };

  it('a Kinesis consumer keeping entries 2 days under the 7-day stream is refused, with the floor', () => {
    assert.throws(synth(kinesis), /reporter\.json: ledger\.retentionDays 2 must outlive its source \(kinesis keeps records 168 h\): at least 8/);
  });

  it('the same consumer passes once the stream keeps records 24 h, as a DynamoDB-stream consumer does at 2 days', () => {
    assert.doesNotThrow(synth(kinesis, { 'fanout:usersKinesisRetentionHours': '24' }));
    assert.doesNotThrow(synth({ ledger: { retentionDays: 2, why: 'test' } }));
  });
});

describe('where a consumer builds from', () => {
  it("is its own crate's manifest, so its zip has its own features only", () => {
    assert.equal(consumerManifest('welcome-email'), path.join(WORKSPACE_ROOT, 'crates', 'welcome-email', 'Cargo.toml'));
  });

  it('falls back to the workspace for a consumer registered before its crate exists', () => {
    assert.equal(consumerManifest('reporter'), path.join(WORKSPACE_ROOT, 'Cargo.toml'));
  });
});
