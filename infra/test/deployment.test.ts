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

  it('a stack whose alarms would reach nobody fails synthesis, naming the setting', () => {
    assert.throws(() => synthWith({ 'fanout:alarmSubscriptions': '' }), /its alarms would reach nobody\. Set CDK context fanout:alarmSubscriptions/);
    assert.throws(() => synthWith({ 'fanout:alarmSubscriptions': 'pager' }), /"pager" is neither an email address nor an https:\/\/ endpoint/);
    assert.throws(() => synthWith({ 'fanout:alarmSubscriptions': 'http://chat.example.com/hook' }), /neither an email address nor an https/);
    // "none" on purpose: a topic without subscribers.
    const none = Template.fromStack(synthWith({ 'fanout:alarmSubscriptions': 'none' }).consumers.AuditLog);
    none.resourceCountIs('AWS::SNS::Subscription', 0);
  });

  it('subscribes every listed email address and HTTPS endpoint to each consumer topic', () => {
    for (const stack of Object.values(synthWith({}).consumers)) {
      const template = Template.fromStack(stack);
      template.resourceCountIs('AWS::SNS::Subscription', 2);
      template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'oncall@example.com' });
      template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'https', Endpoint: 'https://chat.example.com/hooks/fanout' });
    }
  });

  it('fanout:localAws leaves out only the metric-math Stopped alarm', () => {
    const aws = Template.fromStack(synthWith({}).consumers.CrmSync);
    const local = Template.fromStack(synthWith({ 'fanout:localAws': 'true' }).consumers.CrmSync);
    const count = (t: Template) => Object.keys(t.findResources('AWS::CloudWatch::Alarm')).length;
    assert.equal(count(aws) - count(local), 1);
    assert.equal(Object.keys(local.findResources('AWS::CloudWatch::Alarm', { Properties: { Metrics: Match.anyValue() } })).length, 0);
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
