import * as cdk from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { CONSUMER_STACKS, ConsumerStack } from './consumer-stacks';
import { ConsumerName, loadSettings } from './settings';
import { TablesStack } from './tables-stack';

/**
 * The whole app: FanoutTables and one stack per consumer, checked by cdk-nag.
 *
 * @param env where the stacks go. @default the CDK CLI's `CDK_DEFAULT_ACCOUNT` and
 * `CDK_DEFAULT_REGION` (the CLI always fills in a region); both unset gives env-agnostic
 * stacks. Tests synthesize both ways, since a concrete region changes resolved ARNs.
 */
export function buildApp(
  app: cdk.App,
  env: cdk.Environment = { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
): { tables: TablesStack; consumers: Record<ConsumerName, ConsumerStack> } {
  const settings = loadSettings();
  const tables = new TablesStack(app, 'FanoutTables', { env, description: 'fanout: Users (with stream), EffectLedger, UserAudit' });
  const consumers = {} as Record<ConsumerName, ConsumerStack>;
  for (const name of Object.keys(CONSUMER_STACKS) as ConsumerName[]) {
    consumers[name] = new CONSUMER_STACKS[name](app, name, {
      env,
      settings: settings[name],
      description: `fanout consumer ${settings[name].crate}`,
    });
  }
  cdk.Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
  return { tables, consumers };
}
