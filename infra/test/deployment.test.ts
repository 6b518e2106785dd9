// Deployment settings from CDK context: each has a default, a refusal, and an effect on the
// template; and the toolchain check names what is missing instead of falling back to Docker.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import * as cdk from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../lib/app';
import { cdkJsonContext } from '../lib/settings';
import { ensureRustToolchain } from '../lib/toolchain';

function synthWith(context: Record<string, string>) {
  const app = new cdk.App({ context: { ...cdkJsonContext(), ...context, 'aws:cdk:bundling-stacks': [] } });
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
