// Synthesizes the app for all tests, without the Rust cross-build (bundling skipped via CDK's
// own aws:cdk:bundling-stacks context); `make synth` does the real build.
//
// Twice: env-agnostic, and for a concrete account and region as the CDK CLI does (it always
// fills in a region). Resolved ARNs differ between the two, and so do the strings cdk-nag
// matches suppressions against, so every nag and IAM check runs on both.
import * as cdk from 'aws-cdk-lib';
import { Annotations, Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../lib/app';
import { cdkJsonContext, EXAMPLE_CONTEXT, ConsumerName, loadSettings } from '../lib/settings';

export const settings = loadSettings();

/**
 * The consumers under test: every one in the registry (infra/consumers/), or one team's with
 * `FANOUT_CONSUMER=<crate or stack name>` (`make test-consumer C=crm-sync`).
 */
export const NAMES: ConsumerName[] = Object.keys(settings).filter((name) => {
  const only = process.env.FANOUT_CONSUMER;
  return !only || only === name || only === settings[name].crate;
});
if (NAMES.length === 0) throw new Error(`FANOUT_CONSUMER=${process.env.FANOUT_CONSUMER} names no consumer in infra/consumers/`);

/** The concrete environment the second synthesis uses. */
export const CONCRETE_ENV = { account: '111111111111', region: 'eu-west-1' };

function synthesize(env: cdk.Environment) {
  const app = new cdk.App({ context: { ...cdkJsonContext(), ...EXAMPLE_CONTEXT, 'aws:cdk:bundling-stacks': [] } });
  const built = buildApp(app, env);
  app.synth();
  const allStacks: cdk.Stack[] = [built.tables, ...NAMES.map((n) => built.consumers[n])];
  return { built, allStacks };
}

const agnostic = synthesize({});
const concrete = synthesize(CONCRETE_ENV);

/** Both syntheses, labelled, for checks that must hold wherever the app is synthesized. */
export const syntheses = [
  { label: 'env-agnostic', ...agnostic },
  { label: `${CONCRETE_ENV.region}/${CONCRETE_ENV.account}`, ...concrete },
];

export const built = agnostic.built;
export const allStacks = agnostic.allStacks;
export const tablesTemplate = Template.fromStack(built.tables);
export const templates = Object.fromEntries(
  NAMES.map((name) => [name, Template.fromStack(built.consumers[name])]),
) as Record<ConsumerName, Template>;
export const concreteTemplates = Object.fromEntries(
  NAMES.map((name) => [name, Template.fromStack(concrete.built.consumers[name])]),
) as Record<ConsumerName, Template>;

export const annotations = (stack: cdk.Stack) => Annotations.fromStack(stack);
