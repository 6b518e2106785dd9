import * as cdk from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ConsumerStack } from './consumer-stack';
import { stackClassFor } from './consumers';
import { stackName } from './names';
import { PartSources, pipelineParts } from './pipeline';
import { githubRepository, PipelineRolesStack } from './pipeline-roles-stack';
import { ConsumerName, loadSettings, REGISTRY_DIR } from './settings';
import { TablesStack } from './tables-stack';

/**
 * The whole app: FanoutTables and one stack per consumer, checked by cdk-nag.
 *
 * @param env where the stacks go. @default the CDK CLI's `CDK_DEFAULT_ACCOUNT` and
 * `CDK_DEFAULT_REGION` (the CLI always fills in a region); both unset gives env-agnostic
 * stacks. Tests synthesize both ways, since a concrete region changes resolved ARNs.
 * @param registryDir the consumer registry, one `<crate>.json` each. @default infra/consumers/
 * @param pipeline where the pipeline roles' parts come from besides the registry (CODEOWNERS,
 * the crate folders). @default the checkout's
 */
export function buildApp(
  app: cdk.App,
  env: cdk.Environment = { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  registryDir: string = REGISTRY_DIR,
  pipeline: PartSources = {},
): { tables: TablesStack; consumers: Record<ConsumerName, ConsumerStack>; pipelineRoles?: PipelineRolesStack } {
  const settings = loadSettings(registryDir);
  const kinesisDestination = Object.values(settings).some((s) => s.source === 'kinesis');
  const tables = new TablesStack(app, stackName(app, 'FanoutTables'), {
    env,
    kinesisDestination,
    description: `fanout: Users (with stream${kinesisDestination ? ' and Kinesis streaming destination' : ''}), EffectLedger, UserAudit`,
  });
  const consumers = {} as Record<ConsumerName, ConsumerStack>;
  for (const name of Object.keys(settings)) {
    const StackClass = stackClassFor(name);
    consumers[name] = new StackClass(app, stackName(app, name), {
      env,
      settings: settings[name],
      description: `fanout consumer ${settings[name].crate}`,
    });
    // Deploy order only (no export, no CloudFormation coupling): `cdk deploy --all` of a new
    // stage must write the SSM parameters before a consumer stack resolves them, and without
    // it the CLI starts whichever stack's assets are published first. `make deploy` and the
    // pipelines deploy `--exclusively`, so a team's deploy still touches only its own stack.
    consumers[name].addDependency(tables, 'resolves the SSM parameters FanoutTables writes');
  }
  // The deploy identities of this stage's pipelines, when a repository is named.
  const pipelineRoles =
    githubRepository(app) === undefined
      ? undefined
      : new PipelineRolesStack(app, stackName(app, 'FanoutPipelineRoles'), {
          env,
          parts: pipelineParts({ ...pipeline, registryDir }),
          settings,
          description: 'fanout: the GitHub OIDC deploy and diff roles of each team, one stack each',
        });
  cdk.Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
  return { tables, consumers, pipelineRoles };
}
