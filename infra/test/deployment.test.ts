// Deployment settings from CDK context: each has a default, a refusal, and an effect on the
// template; and the toolchain check names what is missing instead of falling back to Docker.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import * as cdk from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../lib/app';
import { cdkJsonContext, EXAMPLE_CONTEXT } from '../lib/settings';
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
    const week = Template.fromStack(synthWith({ 'fanout:usersKinesisRetentionHours': '720' }).tables);
    week.hasResourceProperties('AWS::Kinesis::Stream', { RetentionPeriodHours: 720 });
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
