import * as cdk from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { stackClassFor } from './consumers';
import { context, optionalContext } from './deployment';
import { parameterArn, stackName } from './names';
import { deployRoleName, diffRoleName, environmentName, Part, TABLES_PART, TABLES_STACK } from './pipeline';
import { ConsumerName, ConsumerSettings } from './settings';

/** GitHub's OIDC issuer, and the audience aws-actions/configure-aws-credentials asks for. */
export const GITHUB_OIDC_HOST = 'token.actions.githubusercontent.com';
const AUDIENCE = 'sts.amazonaws.com';

export interface PipelineRolesStackProps extends cdk.StackProps {
  /** Every deployable part (lib/pipeline.ts): the tables and each consumer, with its team. */
  readonly parts: readonly Part[];
  readonly settings: Record<ConsumerName, ConsumerSettings>;
}

/**
 * `fanout:githubRepository`: `owner/name` of the repository whose workflows deploy this
 * stage. Unset: no pipeline roles are built.
 */
export function githubRepository(scope: Construct): string | undefined {
  const value = optionalContext(scope, 'githubRepository');
  if (value !== undefined && !/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/.test(value)) {
    throw new Error(`CDK context fanout:githubRepository must be owner/name, not ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * The deploy identities of one stage, deployed once per stage by the platform team (from a
 * workstation: it is what the pipelines deploy with): GitHub's OIDC provider, and per part
 * (the tables, each consumer) two roles only that part's jobs can assume.
 *
 * - `fanout-<stage>-deploy-<part>`: trusted by the jobs of this repository that run in the
 *   GitHub environment `<stage>-<part>` (whose deployment-branch rule and required reviewers
 *   are GitHub's, see docs/consumers.md). It changes its own stack through CloudFormation
 *   and nothing else: change sets on that one stack, passing the CDK bootstrap's execution
 *   role to CloudFormation, the bootstrap's asset-publishing and lookup roles, the
 *   parameters preflight and CloudFormation read, and what its preflight reads.
 * - `fanout-<stage>-diff-<part>`: trusted by this repository's pull-request jobs; reads its
 *   stack's template for `cdk diff`, changes nothing.
 *
 * Names follow CDK's bootstrap conventions (`@aws-cdk/core:bootstrapQualifier`,
 * `cdk-<qualifier>-<purpose>-role-<account>-<region>`).
 */
export class PipelineRolesStack extends cdk.Stack {
  readonly deployRoles: Record<string, iam.Role> = {};
  readonly diffRoles: Record<string, iam.Role> = {};

  constructor(scope: Construct, id: string, props: PipelineRolesStackProps) {
    super(scope, id, props);
    const repository = githubRepository(this);
    const stage = optionalContext(this, 'stage');
    if (repository === undefined || stage === undefined) {
      throw new Error('pipeline roles are per stage and repository: set fanout:stage and fanout:githubRepository');
    }
    const providerArn = this.provider();
    for (const part of props.parts) {
      const stack = stackName(this, part.stack);
      const deploy = new iam.Role(this, `Deploy-${part.part}`, {
        roleName: deployRoleName(stage, part.part),
        description: `${part.team} deploys ${stack} from the GitHub environment ${environmentName(stage, part.part)}, and nothing else`,
        assumedBy: this.github(providerArn, { StringEquals: { [`${GITHUB_OIDC_HOST}:sub`]: `repo:${repository}:environment:${environmentName(stage, part.part)}` } }),
        maxSessionDuration: cdk.Duration.hours(1),
      });
      deploy.attachInlinePolicy(
        new iam.Policy(this, `DeployPolicy-${part.part}`, { statements: this.deployStatements(stack, part, props.settings) }),
      );
      this.deployRoles[part.part] = deploy;
      const diff = new iam.Role(this, `Diff-${part.part}`, {
        roleName: diffRoleName(stage, part.part),
        description: `A pull request's cdk diff of ${stack}: reads its template, changes nothing`,
        assumedBy: this.github(providerArn, { StringEquals: { [`${GITHUB_OIDC_HOST}:sub`]: `repo:${repository}:pull_request` } }),
        maxSessionDuration: cdk.Duration.hours(1),
      });
      diff.attachInlinePolicy(new iam.Policy(this, `DiffPolicy-${part.part}`, { statements: this.diffStatements(stack) }));
      this.diffRoles[part.part] = diff;
    }
    NagSuppressions.addStackSuppressions(this, [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          'A stack ARN ends in an ID CloudFormation assigns (stack/<name>/*, the name is this part\'s own); the parameters are this stage\'s tables/* that CloudFormation and preflight read; the Kinesis consumers\' Users table is named by CloudFormation from its stack (<FanoutTables stack>-*).',
      },
    ]);
  }

  /** `fanout:githubOidcProvider`: `create` (the account has none yet) or the ARN of the account's provider. */
  private provider(): string {
    const value = context(this, 'githubOidcProvider');
    if (value === 'create') {
      return new iam.CfnOIDCProvider(this, 'GitHubOidc', { url: `https://${GITHUB_OIDC_HOST}`, clientIdList: [AUDIENCE] }).attrArn;
    }
    if (!/^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider\/token\.actions\.githubusercontent\.com$/.test(value)) {
      throw new Error(
        `CDK context fanout:githubOidcProvider must be "create" or the ARN of the account's ${GITHUB_OIDC_HOST} provider, not ${JSON.stringify(value)}`,
      );
    }
    return value;
  }

  /** GitHub's tokens for this audience whose subject matches (an operator such as `StringEquals`). */
  private github(providerArn: string, subject: Record<string, Record<string, string>>): iam.IPrincipal {
    const conditions: Record<string, Record<string, string>> = { StringEquals: { [`${GITHUB_OIDC_HOST}:aud`]: AUDIENCE } };
    for (const [operator, pairs] of Object.entries(subject)) conditions[operator] = { ...conditions[operator], ...pairs };
    return new iam.FederatedPrincipal(providerArn, conditions, 'sts:AssumeRoleWithWebIdentity');
  }

  private bootstrapRole(purpose: string): string {
    const qualifier = this.node.tryGetContext('@aws-cdk/core:bootstrapQualifier') ?? 'hnb659fds';
    return this.formatArn({ service: 'iam', region: '', resource: 'role', resourceName: `cdk-${qualifier}-${purpose}-role-${this.account}-${this.region}` });
  }

  private bootstrapVersion(): string {
    const qualifier = this.node.tryGetContext('@aws-cdk/core:bootstrapQualifier') ?? 'hnb659fds';
    return this.formatArn({ service: 'ssm', resource: 'parameter', resourceName: `cdk-bootstrap/${qualifier}/version` });
  }

  private stackArn(stack: string): string {
    return this.formatArn({ service: 'cloudformation', resource: 'stack', resourceName: `${stack}/*` });
  }

  private deployStatements(stack: string, part: Part, settings: Record<ConsumerName, ConsumerSettings>): iam.PolicyStatement[] {
    const statements = [
      new iam.PolicyStatement({
        sid: 'ChangeSetsOnItsOwnStackOnly',
        actions: [
          'cloudformation:CreateChangeSet',
          'cloudformation:DescribeChangeSet',
          'cloudformation:ExecuteChangeSet',
          'cloudformation:DeleteChangeSet',
          'cloudformation:DescribeStacks',
          'cloudformation:DescribeStackEvents',
          'cloudformation:GetTemplate',
        ],
        resources: [this.stackArn(stack)],
      }),
      new iam.PolicyStatement({
        sid: 'TheBootstrapExecutionRoleToCloudFormationOnly',
        actions: ['iam:PassRole'],
        resources: [this.bootstrapRole('cfn-exec')],
        conditions: { StringEquals: { 'iam:PassedToService': 'cloudformation.amazonaws.com' } },
      }),
      new iam.PolicyStatement({
        sid: 'AssetsAndLookupsThroughTheBootstrapRoles',
        actions: ['sts:AssumeRole'],
        resources: [this.bootstrapRole('file-publishing'), this.bootstrapRole('lookup')],
      }),
      new iam.PolicyStatement({
        sid: 'ParametersPreflightAndCloudFormationRead',
        actions: ['ssm:GetParameter', 'ssm:GetParameters'],
        resources: [this.bootstrapVersion(), parameterArn(this, 'tables/*')],
      }),
    ];
    const entry = Object.values(settings).find((s) => s.crate === part.part);
    if (part.part !== TABLES_PART && entry !== undefined) {
      if (entry.source === 'kinesis') {
        const users = optionalContext(this, 'usersTableName') ?? `${stackName(this, TABLES_STACK)}-*`;
        statements.push(
          new iam.PolicyStatement({
            sid: 'PreflightReadsTheUsersKinesisDestination',
            actions: ['dynamodb:DescribeKinesisStreamingDestination'],
            resources: [this.formatArn({ service: 'dynamodb', resource: 'table', resourceName: users })],
          }),
        );
      }
      statements.push(...stackClassFor(entry.stack).preflightReads(this, entry));
    }
    if (part.part === TABLES_PART) {
      const attached = optionalContext(this, 'usersTableName');
      if (attached !== undefined) {
        statements.push(
          new iam.PolicyStatement({
            sid: 'PreflightReadsTheAttachedUsersTable',
            actions: ['dynamodb:DescribeTable'],
            resources: [this.formatArn({ service: 'dynamodb', resource: 'table', resourceName: attached })],
          }),
        );
      }
    }
    return statements;
  }

  private diffStatements(stack: string): iam.PolicyStatement[] {
    return [
      new iam.PolicyStatement({
        sid: 'ItsOwnStacksTemplateRead',
        actions: ['cloudformation:DescribeStacks', 'cloudformation:GetTemplate'],
        resources: [this.stackArn(stack)],
      }),
      new iam.PolicyStatement({
        sid: 'LookupsThroughTheBootstrapRole',
        actions: ['sts:AssumeRole'],
        resources: [this.bootstrapRole('lookup')],
      }),
      new iam.PolicyStatement({
        sid: 'TheBootstrapVersionRead',
        actions: ['ssm:GetParameter'],
        resources: [this.bootstrapVersion()],
      }),
    ];
  }
}
