import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import * as cdk from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../lib/app';
import { cdkJsonContext, EXAMPLE_CONTEXT, loadSettings, REGISTRY_DIR } from '../lib/settings';

/** A copy of the registry with one entry (welcome-email's unless named) changed. */
function withChange(change: (s: any) => void, entry = 'welcome-email.json'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fanout-registry-'));
  for (const file of fs.readdirSync(REGISTRY_DIR)) {
    const parsed = JSON.parse(fs.readFileSync(path.join(REGISTRY_DIR, file), 'utf8'));
    if (file === entry) change(parsed);
    fs.writeFileSync(path.join(dir, file), JSON.stringify(parsed));
  }
  return dir;
}

describe('registry validation refuses settings that break the stream contract', () => {
  const cases: [string, (s: any) => void, RegExp][] = [
    ['parallelization above 1', (s) => (s.eventSourceMapping.parallelizationFactor = 2), /parallelizationFactor/],
    ['record age near retention', (s) => (s.eventSourceMapping.maximumRecordAgeSeconds = 86400), /maximumRecordAgeSeconds/],
    ['unbounded retries', (s) => (s.eventSourceMapping.maximumRetryAttempts = -1), /maximumRetryAttempts/],
    ['partial batch responses off', (s) => (s.eventSourceMapping.reportBatchItemFailures = false), /reportBatchItemFailures/],
    ['bisect off', (s) => (s.eventSourceMapping.bisectBatchOnFunctionError = false), /bisect/],
    ['late iterator-age alarm', (s) => (s.alarms.iteratorAgeMaxSeconds = 20 * 3600), /iterator-age/],
    ['no DLQ_URL', (s) => (s.environment.required = s.environment.required.filter((v: string) => v !== 'DLQ_URL')), /DLQ_URL/],
    ['a log retention CloudWatch does not offer', (s) => (s.logs.retentionDays = 31), /logs.retentionDays must be one of CloudWatch's retentions/],
    ['a log level Lambda does not know', (s) => (s.logs.level = 'VERBOSE'), /logs.level must be one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL/],
    ['logs without their reason', (s) => (s.logs.why = ''), /logs.why/],
    ['an on-failure destination it does not know', (s) => (s.onFailure.destination = 'sns'), /onFailure.destination must be one of dlq, bucket/],
    ['a bucket kept for no time', (s) => (s.onFailure = { destination: 'bucket', bucketRetentionDays: 0, why: 'x' }), /bucketRetentionDays must be a whole number/],
    ['a bucket retention on a queue', (s) => (s.onFailure.bucketRetentionDays = 7), /read only with onFailure.destination bucket/],
    ['an on-failure destination without its reason', (s) => (s.onFailure.why = ''), /onFailure.why/],
    ['no USERS_TABLE', (s) => (s.environment.required = ['LEDGER_TABLE', 'DLQ_URL', 'FROM_ADDRESS']), /USERS_TABLE/],
    ['no LEDGER_TABLE', (s) => (s.environment.required = ['USERS_TABLE', 'DLQ_URL', 'FROM_ADDRESS']), /LEDGER_TABLE/],
    ['a ledger prefix other than the crate', (s) => (s.ledgerKeyPrefix = 'welcome'), /ledgerKeyPrefix must be the crate name/],
    ['a record budget the timeout cannot hold twice', (s) => (s.function.recordBudgetSeconds = 20), /twice recordBudgetSeconds/],
    ['a ledger retention shorter than the stream', (s) => (s.ledger.retentionDays = 1), /ledger.retentionDays/],
    ['a ledger retention without its reason', (s) => (s.ledger.why = ''), /ledger.why/],
    ['a single retry', (s) => (s.eventSourceMapping.maximumRetryAttempts = 1), /at least 2/],
    ['a context variable the consumer does not read', (s) => (s.environment.fromContext = { NOT_READ: 'fromAddress' }), /NOT_READ/],
    ['a crate name that is not one', (s) => (s.crate = 'Welcome Email'), /kebab-case/],
    ['a file not named after its crate', (s) => { s.crate = 'welcome-mail'; s.ledgerKeyPrefix = 'welcome-mail'; }, /name the file after its crate/],
    ['a stack declared twice', (s) => (s.stack = 'CrmSync'), /declared twice/],
    ['a source it cannot map', (s) => (s.source = 'sqs'), /source must be one of dynamodb-stream, kinesis/],
    ['a source without its reason', (s) => (s.sourceWhy = ''), /sourceWhy/],
    ['images read as nothing it knows', (s) => (s.decodes = 'xml'), /decodes must be one of user, raw-images/],
    ['no word on how it reads images', (s) => delete s.decodes, /decodes must be one of user, raw-images/],
    ['AT_TIMESTAMP on the DynamoDB stream', (s) => { s.source = 'dynamodb-stream'; s.eventSourceMapping.startingPosition = 'AT_TIMESTAMP'; s.eventSourceMapping.startingPositionTimestamp = 1764590000; }, /AT_TIMESTAMP exists for Kinesis only/],
    ['AT_TIMESTAMP without a time', (s) => { s.source = 'kinesis'; s.eventSourceMapping.startingPosition = 'AT_TIMESTAMP'; }, /needs startingPositionTimestamp/],
    ['a timestamp without AT_TIMESTAMP', (s) => (s.eventSourceMapping.startingPositionTimestamp = 1764590000), /only with startingPosition AT_TIMESTAMP/],
  ];
  for (const [what, change, message] of cases) {
    it(what, () => assert.throws(() => loadSettings(withChange(change)), message));
  }
  it('accepts the shipped file, whose every consumer is a crate of the workspace', () => {
    const all = loadSettings();
    assert.ok(Object.keys(all).length > 0);
    for (const [name, s] of Object.entries(all)) {
      assert.ok(fs.existsSync(path.join(__dirname, '..', '..', '..', 'crates', s.crate, 'Cargo.toml')), `${name}: no crate ${s.crate}`);
    }
  });
});

describe('switching a consumer to Kinesis', () => {
  it('starts its new mapping AT_TIMESTAMP through its own consumer, and moves its filters into data, for the Users table only', () => {
    const dir = withChange((s) => {
      s.source = 'kinesis';
      s.eventSourceMapping.startingPosition = 'AT_TIMESTAMP';
      s.eventSourceMapping.startingPositionTimestamp = 1764590000;
      s.eventSourceMapping.filters = [{ eventName: ['INSERT', 'MODIFY'] }];
    }, 'crm-sync.json');
    const app = new cdk.App({ context: { ...cdkJsonContext(), ...EXAMPLE_CONTEXT, 'aws:cdk:bundling-stacks': [] } });
    const template = Template.fromStack(buildApp(app, {}, dir).consumers.CrmSync);
    template.resourceCountIs('AWS::Kinesis::StreamConsumer', 1);
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      StartingPosition: 'AT_TIMESTAMP',
      StartingPositionTimestamp: 1764590000,
    });
    const mapping = Object.values(template.findResources('AWS::Lambda::EventSourceMapping'))[0];
    const [pattern] = mapping.Properties.FilterCriteria.Filters.map((f: { Pattern: { 'Fn::Join': [string, unknown[]] } }) =>
      f.Pattern['Fn::Join'][1].map((part) => (typeof part === 'string' ? part : 'USERS')).join(''),
    );
    assert.deepEqual(JSON.parse(pattern), { data: { eventName: ['INSERT', 'MODIFY'], tableName: ['USERS'] } });
  });
});
