// Deployment settings from CDK context: each has a default, a refusal, and an effect on the
// template; and the toolchain check names what is missing instead of falling back to Docker.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import * as cdk from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../lib/app';
import { cdkJsonContext, EXAMPLE_CONTEXT, loadSettings } from '../lib/settings';

const settings = loadSettings();
import { ensureRustToolchain } from '../lib/toolchain';

function synthWith(context: Record<string, string>) {
  const app = new cdk.App({ context: { ...cdkJsonContext(), ...EXAMPLE_CONTEXT, ...context, 'aws:cdk:bundling-stacks': [] } });
  return buildApp(app, {});
}

describe('deployment settings', () => {
  it('fanout:architecture defaults to arm64 and x86_64 is honoured', () => {
    const arm = Template.fromStack(synthWith({}).consumers.AuditLog);
    arm.hasResourceProperties('AWS::Lambda::Function', { Architectures: ['arm64'] });
    const x86 = Template.fromStack(synthWith({ 'fanout:architecture': 'x86_64' }).consumers.AuditLog);
    x86.hasResourceProperties('AWS::Lambda::Function', { Architectures: ['x86_64'] });
  });

  it('refuses an architecture or build profile it does not know', () => {
    assert.throws(() => synthWith({ 'fanout:architecture': 'riscv' }), /fanout:architecture must be arm64 or x86_64/);
    assert.throws(() => synthWith({ 'fanout:buildProfile': 'fast' }), /fanout:buildProfile must be release or dev/);
  });

  it('a topic whose alarms would reach nobody fails synthesis, naming the setting', () => {
    for (const severity of ['page', 'ticket']) {
      const key = `fanout:${severity}Subscriptions`;
      assert.throws(() => synthWith({ [key]: '' }), new RegExp(`its ${severity} alarms would reach nobody\\. Set CDK context ${key}`));
      assert.throws(() => synthWith({ [key]: 'pager' }), /"pager" is neither an email address nor an https:\/\/ endpoint/);
      assert.throws(() => synthWith({ [key]: 'http://chat.example.com/hook' }), /neither an email address nor an https/);
    }
    // The old single setting is named with its replacement, not silently ignored.
    assert.throws(() => synthWith({ 'fanout:alarmSubscriptions': 'oncall@example.com' }), /split by severity: set fanout:pageSubscriptions .* and fanout:ticketSubscriptions/);
    // "none" on purpose: topics without subscribers.
    const none = synthWith({ 'fanout:pageSubscriptions': 'none', 'fanout:ticketSubscriptions': 'none' });
    for (const stack of [none.tables, none.consumers.AuditLog]) Template.fromStack(stack).resourceCountIs('AWS::SNS::Subscription', 0);
  });

  it('subscribes the page and ticket subscribers to their own topics, in every stack', () => {
    const built = synthWith({});
    for (const stack of [built.tables, ...Object.values(built.consumers)]) {
      const template = Template.fromStack(stack);
      template.resourceCountIs('AWS::SNS::Topic', 2);
      const topicId = (severity: string) =>
        Object.entries(template.findResources('AWS::SNS::Topic')).find(([, t]) => String(t.Properties.DisplayName).endsWith(`: ${severity}`))![0];
      template.resourceCountIs('AWS::SNS::Subscription', 3);
      template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'oncall@example.com', TopicArn: { Ref: topicId('page') } });
      template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'https', Endpoint: 'https://pager.example.com/hooks/fanout', TopicArn: { Ref: topicId('page') } });
      template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'https', Endpoint: 'https://chat.example.com/hooks/fanout', TopicArn: { Ref: topicId('ticket') } });
    }
  });

  it('fanout:localAws leaves out only the metric-math and Metrics Insights alarms', () => {
    const aws = synthWith({});
    const local = synthWith({ 'fanout:localAws': 'true' });
    const count = (t: Template) => Object.keys(t.findResources('AWS::CloudWatch::Alarm')).length;
    const math = (t: Template) => Object.keys(t.findResources('AWS::CloudWatch::Alarm', { Properties: { Metrics: Match.anyValue() } })).length;
    for (const pick of [(b: typeof aws) => b.consumers.CrmSync, (b: typeof aws) => b.tables]) {
      const [a, l] = [Template.fromStack(pick(aws)), Template.fromStack(pick(local))];
      assert.equal(count(a) - count(l), math(a));
      assert.equal(math(l), 0);
    }
    assert.equal(math(Template.fromStack(aws.consumers.CrmSync)), 1, 'Stopped');
    assert.equal(math(Template.fromStack(aws.tables)), 5, 'two system-error and three Kinesis replication alarms');
    assert.throws(() => synthWith({ 'fanout:localAws': 'yes' }), /fanout:localAws must be true or false/);
  });

  it('fanout:stage puts the stage into every name a second deployment would collide on', () => {
    const dev = synthWith({ 'fanout:stage': 'dev' });
    assert.equal(dev.tables.stackName, 'FanoutTables-dev');
    assert.deepEqual(
      Object.values(dev.consumers).map((c) => c.stackName).sort(),
      Object.keys(loadSettings()).map((name) => `${name}-dev`).sort(),
    );
    const everything = JSON.stringify([dev.tables, ...Object.values(dev.consumers)].map((st) => Template.fromStack(st).toJSON()));
    const parameters = [...everything.matchAll(/"\/fanout\/[^"]*"/g)].map((m) => m[0]);
    assert.ok(parameters.length > 10, 'parameters are named');
    for (const name of parameters) assert.match(name, /^"\/fanout\/dev\//, `${name} carries no stage`);
    const tables = Template.fromStack(dev.tables);
    tables.hasResourceProperties('AWS::SSM::Parameter', { Name: '/fanout/dev/tables/users/name' });
    const welcome = Template.fromStack(dev.consumers.WelcomeEmail);
    welcome.hasResourceProperties('AWS::CloudWatch::Dashboard', { DashboardName: 'fanout-dev-welcome-email' });
    welcome.hasResourceProperties('AWS::Kinesis::StreamConsumer', { ConsumerName: 'fanout-dev-welcome-email' });
    welcome.hasResourceProperties('AWS::SSM::Parameter', { Name: '/fanout/dev/consumers/welcome-email' });
    // Without a stage: today's names.
    const plain = synthWith({});
    assert.equal(plain.tables.stackName, 'FanoutTables');
    Template.fromStack(plain.consumers.WelcomeEmail).hasResourceProperties('AWS::CloudWatch::Dashboard', { DashboardName: 'fanout-welcome-email' });
    Template.fromStack(plain.tables).hasResourceProperties('AWS::SSM::Parameter', { Name: '/fanout/tables/users/name' });
  });

  it('fanout:usersTableName attaches to an existing table: referenced, never created, modified or deleted', () => {
    const arn = 'arn:aws:dynamodb:eu-west-1:111111111111:table/ApiUsers/stream/2026-11-01T00:00:00.000';
    const attached = synthWith({ 'fanout:usersTableName': 'ApiUsers', 'fanout:usersStreamArn': arn });
    const tables = Template.fromStack(attached.tables);
    const created = Object.values(tables.findResources('AWS::DynamoDB::Table')).map((t) => t.Properties.KeySchema[0].AttributeName);
    assert.deepEqual(created.sort(), ['pk', 'userId'], 'EffectLedger (pk) and UserAudit (userId + auditId): no Users');
    assert.equal(Object.values(tables.findResources('AWS::DynamoDB::Table')).filter((t) => t.Properties.SortKey).length, 0);
    tables.hasResourceProperties('AWS::SSM::Parameter', { Name: '/fanout/tables/users/name', Value: 'ApiUsers' });
    tables.hasResourceProperties('AWS::SSM::Parameter', { Name: '/fanout/tables/users/stream-arn', Value: arn });
    assert.ok(!JSON.stringify(tables.toJSON()).includes('KinesisStreamSpecification'), 'the table is not changed');
  });

  it('refuses an existing table named without its stream, or with a stream of another table', () => {
    const arn = 'arn:aws:dynamodb:eu-west-1:111111111111:table/ApiUsers/stream/2026-11-01T00:00:00.000';
    assert.throws(() => synthWith({ 'fanout:usersTableName': 'ApiUsers' }), /fanout:usersTableName and fanout:usersStreamArn go together/);
    assert.throws(() => synthWith({ 'fanout:usersStreamArn': arn }), /go together/);
    assert.throws(() => synthWith({ 'fanout:usersTableName': 'Other', 'fanout:usersStreamArn': arn }), /a stream of table ApiUsers, not of fanout:usersTableName Other/);
    assert.throws(() => synthWith({ 'fanout:usersTableName': 'ApiUsers', 'fanout:usersStreamArn': 'arn:aws:kinesis:x' }), /is not a DynamoDB stream ARN/);
  });

  it('refuses a stage that is not 1 to 16 of a-z, 0-9 and -', () => {
    for (const bad of ['Dev', 'a_b', 'x'.repeat(17), 'dev stage']) {
      assert.throws(() => synthWith({ 'fanout:stage': bad }), /fanout:stage must be 1 to 16 of a-z, 0-9 and -/, bad);
    }
  });

  it("publishes what fanout-ops needs of each consumer in SSM, a registry entry's subset", () => {
    for (const [name, stack] of Object.entries(synthWith({}).consumers)) {
      const parameter = Object.values(Template.fromStack(stack).findResources('AWS::SSM::Parameter'))[0];
      const entry = JSON.parse(parameter.Properties.Value);
      const s = settings[name];
      assert.equal(parameter.Properties.Name, `/fanout/consumers/${s.crate}`);
      assert.deepEqual(entry, {
        stack: s.stack, crate: s.crate, source: s.source, decodes: s.decodes, onFailure: { destination: s.onFailure.destination },
        eventSourceMapping: { batchSize: s.eventSourceMapping.batchSize, filters: s.eventSourceMapping.filters },
        alarms: { iteratorAgeMaxSeconds: s.alarms.iteratorAgeMaxSeconds },
      });
      assert.ok(parameter.Properties.Value.length < 4096, 'fits a standard parameter');
    }
  });

  it('fanout:kinesisMappingOnStream maps a Kinesis consumer on the stream itself, for a local AWS only', () => {
    assert.throws(
      () => synthWith({ 'fanout:kinesisMappingOnStream': 'true' }),
      /fanout:kinesisMappingOnStream=true is for a local AWS only/,
    );
    assert.throws(() => synthWith({ 'fanout:kinesisMappingOnStream': 'yes' }), /must be true or false/);
    const local = Template.fromStack(synthWith({ 'fanout:kinesisMappingOnStream': 'true', 'fanout:localAws': 'true' }).consumers.SearchWarm);
    local.resourceCountIs('AWS::Kinesis::StreamConsumer', 0);
    local.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { Ref: Match.stringLikeRegexp('fanouttablesuserskinesisstreamarn') },
    });
    const policy = JSON.stringify(local.findResources('AWS::IAM::Policy'));
    assert.ok(!policy.includes('kinesis:SubscribeToShard'), 'no subscription permission without a consumer');
    // On AWS (the default) the consumer and its mapping are there.
    const aws = Template.fromStack(synthWith({}).consumers.SearchWarm);
    aws.resourceCountIs('AWS::Kinesis::StreamConsumer', 1);
  });

  it('fanout:usersKinesisRetentionHours sets the Kinesis stream retention, 24..8760 h', () => {
    const days = Template.fromStack(synthWith({ 'fanout:usersKinesisRetentionHours': '168' }).tables);
    days.hasResourceProperties('AWS::Kinesis::Stream', { RetentionPeriodHours: 168 });
    // A month of stream outlives the shipped Kinesis consumers' ledger entries (search-warm's
    // 8 days): refused, naming the floor.
    assert.throws(() => synthWith({ 'fanout:usersKinesisRetentionHours': '720' }), /\.json: ledger\.retentionDays \d+ must outlive its source \(kinesis keeps records 720 h\): at least 31/);
    for (const bad of ['12', '9000', 'a week']) {
      assert.throws(() => synthWith({ 'fanout:usersKinesisRetentionHours': bad }), /usersKinesisRetentionHours must be a whole number of hours/);
    }
  });

  it('a missing required context value is named', () => {
    assert.throws(() => synthWith({ 'fanout:crmEventBusName': '' }), /missing CDK context fanout:crmEventBusName/);
  });

  it('every consumer stack outputs what tools look up', () => {
    const built = synthWith({});
    for (const stack of Object.values(built.consumers)) {
      const outputs = Object.keys(Template.fromStack(stack).toJSON().Outputs ?? {});
      for (const key of ['FunctionName', 'DlqUrl', 'DlqArn', 'EventSourceMappingId']) {
        assert.ok(outputs.includes(key), `${stack.stackName} has no output ${key}: ${outputs}`);
      }
    }
  });
});

describe('the Rust toolchain check', () => {
  it('names cargo-lambda and make tools when cargo-lambda is not found', () => {
    const saved = process.env.PATH;
    // A machine where `make tools` never ran: no .tools folder, nothing useful on PATH.
    process.env.PATH = '/nonexistent';
    try {
      assert.throws(
        () => ensureRustToolchain(lambda.Architecture.X86_64, '/nonexistent/.tools/venv/bin'),
        /cargo-lambda is needed to build the functions and was not found: run `make tools`/,
      );
    } finally {
      process.env.PATH = saved;
    }
  });
});
