// Synthesizes the app once for all tests, without the Rust cross-build (bundling skipped via
// CDK's own aws:cdk:bundling-stacks context); `make synth` does the real build.
import * as cdk from 'aws-cdk-lib';
import { Annotations, Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../lib/app';
import { cdkJsonContext, ConsumerName, loadSettings } from '../lib/settings';

export const NAMES: ConsumerName[] = ['WelcomeEmail', 'CrmSync', 'SearchWarm', 'AuditLog'];
export const settings = loadSettings();

const app = new cdk.App({
  context: { ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [] },
});
export const built = buildApp(app);
export const assembly = app.synth();

export const tablesTemplate = Template.fromStack(built.tables);
export const templates = Object.fromEntries(
  NAMES.map((name) => [name, Template.fromStack(built.consumers[name])]),
) as Record<ConsumerName, Template>;

export const allStacks: cdk.Stack[] = [built.tables, ...NAMES.map((n) => built.consumers[n])];
export const annotations = (stack: cdk.Stack) => Annotations.fromStack(stack);
