import * as cdk from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { CONSUMER_STACKS, ConsumerStack } from './consumer-stacks';
import { ConsumerName, loadSettings } from './settings';
import { TablesStack } from './tables-stack';

/** The whole app: FanoutTables and one stack per consumer, checked by cdk-nag. */
export function buildApp(app: cdk.App): { tables: TablesStack; consumers: Record<ConsumerName, ConsumerStack> } {
  const env = { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION };
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
