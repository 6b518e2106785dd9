import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import * as cdk from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { annotations, built, syntheses } from './synth';

type Statement = { Effect: string; Action: string | string[]; Resource?: unknown; NotResource?: unknown };

/** Every policy statement in a template: IAM policies, roles' inline policies, queue and topic policies. */
function statements(template: Record<string, any>): { where: string; statement: Statement }[] {
  const found: { where: string; statement: Statement }[] = [];
  const documents = (logicalId: string, resource: any): [string, any][] => {
    const p = resource.Properties ?? {};
    const docs: [string, any][] = [];
    if (p.PolicyDocument) docs.push([logicalId, p.PolicyDocument]);
    for (const inline of p.Policies ?? []) docs.push([`${logicalId}/${inline.PolicyName}`, inline.PolicyDocument]);
    return docs;
  };
  for (const [logicalId, resource] of Object.entries<any>(template.Resources ?? {})) {
    for (const [where, doc] of documents(logicalId, resource)) {
      for (const statement of doc.Statement ?? []) found.push({ where, statement });
    }
  }
  return found;
}

/**
 * Actions that support no resource-level permission, so their statements must say
 * `Resource: "*"`, each with its reason. Nothing else may use `*`.
 */
const ACTIONS_WITHOUT_RESOURCE: Record<string, string> = {
  'dynamodb:ListStreams': 'the event source mapping lists the table streams; the service authorization reference lists no resource type for it',
  'ses:GetAccount': "preflight reads whether the account is in the SES sandbox; the action is account-wide and lists no resource type",
};

for (const { label, built: synthesized, allStacks } of syntheses) describe(`IAM (${label})`, () => {
  for (const stack of allStacks) {
    const template = JSON.parse(JSON.stringify(stack.resolve((stack as any)._toCloudFormation())));
    it(`${stack.stackName}: no statement grants a wildcard resource, but for actions that support none`, () => {
      const all = statements(template);
      if (stack !== synthesized.tables) assert.ok(all.length > 0, 'no policy statements found: the walk is broken');
      // Deny statements (such as enforceSSL's) narrow access; only grants must be exact.
      for (const { where, statement } of all.filter((s) => s.statement.Effect === 'Allow')) {
        const resources = ([] as unknown[]).concat(statement.Resource ?? []);
        const actions = ([] as string[]).concat(statement.Action);
        if (resources.includes('*')) {
          assert.deepEqual(resources, ['*'], `${where}: "*" beside exact resources widens them all`);
          for (const action of actions) {
            assert.ok(action in ACTIONS_WITHOUT_RESOURCE, `${stack.stackName} ${where}: Resource "*" for ${action}, which supports resource-level permissions`);
          }
        }
        assert.equal(statement.NotResource, undefined, `${where}: NotResource is as broad as a wildcard`);
        for (const action of actions) {
          assert.ok(!/^[a-z0-9-]+:\*$/.test(action) && action !== '*', `${where}: wildcard action ${action}`);
        }
      }
    });

    it(`${stack.stackName}: no AWS managed policy is attached`, () => {
      for (const [id, resource] of Object.entries<any>(template.Resources ?? {})) {
        if (resource.Type === 'AWS::IAM::Role') {
          assert.equal(resource.Properties.ManagedPolicyArns, undefined, `${id} attaches managed policies`);
        }
      }
    });

    it(`${stack.stackName}: cdk-nag AwsSolutions reports no unsuppressed error or warning`, () => {
      const errors = annotations(stack).findError('*', Match.stringLikeRegexp('AwsSolutions-.*'));
      const warnings = annotations(stack).findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*'));
      assert.deepEqual(errors.map((e) => `${e.id}: ${e.entry.data}`), []);
      assert.deepEqual(warnings.map((e) => `${e.id}: ${e.entry.data}`), []);
    });

    it(`${stack.stackName}: every cdk-nag suppression carries a reason`, () => {
      for (const [id, resource] of Object.entries<any>(template.Resources ?? {})) {
        for (const rule of resource.Metadata?.cdk_nag?.rules_to_suppress ?? []) {
          assert.ok(typeof rule.reason === 'string' && rule.reason.length >= 20, `${id}: suppression ${rule.id} without a real reason`);
        }
      }
    });
  }
});

describe('cdk-nag runs for real', () => {
  it('the consumer DLQ carries its suppression with a reason', () => {
    const template = JSON.parse(JSON.stringify(built.consumers.WelcomeEmail.resolve((built.consumers.WelcomeEmail as any)._toCloudFormation())));
    const queue = Object.values<any>(template.Resources).find((r) => r.Type === 'AWS::SQS::Queue');
    const ids = (queue.Metadata?.cdk_nag?.rules_to_suppress ?? []).map((r: any) => r.id);
    assert.deepEqual(ids, ['AwsSolutions-SQS3']);
  });

  it('reports errors on a deliberately bad stack (the check can fail)', () => {
    const app = new cdk.App();
    const stack = new cdk.Stack(app, 'Bad');
    new sqs.Queue(stack, 'PlainQueue', { encryption: sqs.QueueEncryption.UNENCRYPTED });
    cdk.Aspects.of(app).add(new AwsSolutionsChecks());
    app.synth();
    const errors = annotations(stack).findError('*', Match.stringLikeRegexp('AwsSolutions-SQS.*'));
    assert.ok(errors.length >= 2, `expected SQS findings, got ${errors.length}`);
  });
});

/** What fanout-ops calls (crates/fanout-ops/iam-actions.json): the operator policies' contract. */
const OPS_ACTIONS: string[] = JSON.parse(
  fs.readFileSync(path.join(__dirname, '..', '..', '..', 'crates', 'fanout-ops', 'iam-actions.json'), 'utf8'),
).actions.map((a: { action: string }) => a.action);

for (const { label, built: synthesized, allStacks } of syntheses) describe(`operator policies (${label})`, () => {
  const policies = allStacks.map((stack) => {
    const template = JSON.parse(JSON.stringify(stack.resolve((stack as any)._toCloudFormation())));
    const managed = Object.entries<any>(template.Resources ?? {}).filter(([, r]) => r.Type === 'AWS::IAM::ManagedPolicy');
    return { stack, managed };
  });

  it('every stack carries one, named for its deployment, attached to the operator role', () => {
    for (const { stack, managed } of policies) {
      assert.equal(managed.length, 1, `${stack.stackName}: ${managed.length} managed policies`);
      const [, policy] = managed[0];
      assert.match(policy.Properties.ManagedPolicyName, /^fanout-operator-(tables|[a-z-]+)$/, stack.stackName);
      assert.deepEqual(policy.Properties.Roles, ['fanout-operator'], `${stack.stackName}: attached to fanout:operatorRoleArn's role`);
    }
  });

  it('together they grant exactly what fanout-ops calls: each of its actions, and nothing else', () => {
    const granted = new Set<string>();
    for (const { stack, managed } of policies) {
      for (const [, policy] of managed) {
        for (const statement of policy.Properties.PolicyDocument.Statement) {
          assert.equal(statement.Effect, 'Allow');
          for (const action of [statement.Action].flat()) {
            assert.ok(OPS_ACTIONS.includes(action), `${stack.stackName} grants ${action}, which fanout-ops never calls`);
            granted.add(action);
          }
        }
      }
    }
    // One team's run (FANOUT_CONSUMER) synthesizes its stack alone: the other stacks' grants
    // are not there to complete the set.
    if (!process.env.FANOUT_CONSUMER) {
      assert.deepEqual([...granted].sort(), [...OPS_ACTIONS].sort(), 'every action fanout-ops calls is granted');
    }
  });

  it("a consumer's policy names only its own resources", () => {
    const consumerStacks = Object.values(synthesized.consumers);
    for (const stack of consumerStacks) {
      const template = JSON.parse(JSON.stringify(stack.resolve((stack as any)._toCloudFormation())));
      const policy = Object.values<any>(template.Resources).find((r) => r.Type === 'AWS::IAM::ManagedPolicy');
      const text = JSON.stringify(policy.Properties.PolicyDocument);
      for (const other of consumerStacks.filter((o) => o !== stack)) {
        assert.ok(!text.includes(other.stackName + '/'), `${stack.stackName}'s operator policy names ${other.stackName}`);
      }
      for (const ref of text.matchAll(/"Ref":"([A-Za-z0-9]+)"|"Fn::GetAtt":\["([A-Za-z0-9]+)"/g)) {
        const id = ref[1] ?? ref[2];
        assert.ok(template.Resources[id] || template.Parameters?.[id] || id.startsWith('AWS::'), `${stack.stackName}: ${id} is not its own`);
      }
    }
  });
});
