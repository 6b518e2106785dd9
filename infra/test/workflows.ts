// What .github/workflows/ must say for the pipelines to be the registry's (lib/pipeline.ts):
// read by pipeline.test.ts, over the checked-in files and over copies edited to break them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';
import { deployRoleName, diffRoleName, environmentName, Part, PIPELINE_STAGES, TABLES_PART, TABLES_STACK } from '../lib/pipeline';
import { WORKSPACE_ROOT } from '../lib/stream-consumer';

export const WORKFLOW_DIR = path.join(WORKSPACE_ROOT, '.github', 'workflows');
export const DEPLOY = 'deploy.yml';
export const PULL_REQUEST = 'pull-request.yml';

/** The workflows as checked in: file name to text. */
export function checkedInWorkflows(): Record<string, string> {
  return Object.fromEntries([DEPLOY, PULL_REQUEST].map((f) => [f, fs.readFileSync(path.join(WORKFLOW_DIR, f), 'utf8')]));
}

/* eslint-disable @typescript-eslint/no-explicit-any */
type Job = Record<string, any>;
type Step = Record<string, any>;

/** The outputs `make pipeline-plan` writes: the only ones a job may read from the plan. */
export const PLAN_OUTPUTS = ['full-test', 'test-consumers', 'deploy-tables', 'deploy-consumers', 'deploy-parts'];

/** A matrix entry as the plan writes it. */
export interface MatrixPart {
  crate: string;
  stack: string;
  team: string;
}

/** A job with `${{ matrix.part.* }}` filled in: what GitHub runs for one part. */
export function render(job: Job, part: MatrixPart): Job {
  const text = JSON.stringify(job)
    .replace(/\$\{\{ matrix\.part\.crate \}\}/g, part.crate)
    .replace(/\$\{\{ matrix\.part\.stack \}\}/g, part.stack)
    .replace(/\$\{\{ matrix\.part\.team \}\}/g, part.team);
  return JSON.parse(text);
}

const ACCOUNT = (stage: string) => `arn:aws:iam::\${{ vars.FANOUT_${stage.toUpperCase()}_ACCOUNT }}:role/`;

function roleOf(job: Job): string | undefined {
  return job.steps?.find((s: Step) => String(s.uses ?? '').startsWith('aws-actions/configure-aws-credentials@'))?.with?.['role-to-assume'];
}

function runs(job: Job): string {
  return (job.steps ?? []).map((s: Step) => `${s.run ?? ''}`).join('\n');
}

/** The jobs of a workflow text, or a problem naming the file. */
export function jobsOf(file: string, text: string): Record<string, Job> {
  const doc = parse(text);
  if (!doc || typeof doc.jobs !== 'object') throw new Error(`.github/workflows/${file}: no jobs`);
  return doc.jobs;
}

/** A deploy job of one part and stage as GitHub would run it: its environment, role, stage, approval and stack. */
export interface DeployJob {
  job: string;
  stage: string;
  environment: string;
  role: string | undefined;
  run: string;
}

/**
 * The deploy jobs a merge that changes `deploy` runs, rendered from deploy.yml's matrix jobs
 * (the plan's `deploy-consumers` list) and its tables jobs.
 */
export function deployJobs(text: string, deploy: readonly Part[]): DeployJob[] {
  const jobs = jobsOf(DEPLOY, text);
  const rendered: DeployJob[] = [];
  for (const [name, job] of Object.entries(jobs)) {
    if (!runs(job).includes('make deploy')) continue;
    const matrixFrom = String(job.strategy?.matrix?.part ?? '');
    const parts = matrixFrom.includes('needs.plan.outputs.deploy-consumers')
      ? deploy.filter((p) => p.part !== TABLES_PART)
      : deploy.filter((p) => p.part === TABLES_PART && String(job.if ?? '').includes("deploy-tables == 'true'"));
    for (const part of parts) {
      const r = render(job, { crate: part.part, stack: part.stack, team: part.team });
      const stage = /STAGE=([a-z0-9-]+)/.exec(runs(r))?.[1] ?? '';
      const stack = /STACK="?\$STACK"?/.test(runs(r)) ? (r.steps.find((s: Step) => s.env?.STACK)?.env?.STACK ?? '') : /STACK=([A-Za-z0-9-]+)/.exec(runs(r))?.[1];
      rendered.push({ job: `${name} (${part.part})`, stage, environment: String(r.environment ?? ''), role: roleOf(r), run: `${runs(r)} [STACK ${stack}]` });
    }
  }
  return rendered;
}

/**
 * Everything in the workflows that ties a job to a part, checked against lib/pipeline.ts'
 * names. Each problem names the file and the fix.
 */
export function workflowProblems(workflows: Record<string, string>, parts: readonly Part[]): string[] {
  const problems: string[] = [];
  const fix = 'edit infra/lib/pipeline.ts for a change of the pipelines, and keep the workflow to the shape infra/test/workflows.ts reads';
  for (const [file, text] of Object.entries(workflows)) {
    const where = `.github/workflows/${file}`;
    for (const part of parts) {
      if (part.part === TABLES_PART) continue;
      for (const name of [part.part, part.stack]) {
        if (new RegExp(`\\b${name}\\b`).test(text)) {
          problems.push(`${where} names the consumer ${name}: its jobs come from the plan's matrix, so a consumer is never listed (${fix})`);
        }
      }
    }
    const jobs = jobsOf(file, text);
    const plan = jobs.plan;
    if (!plan || !runs(plan).includes('make pipeline-plan')) problems.push(`${where}: its plan job must run make pipeline-plan (${fix})`);
    for (const [name, job] of Object.entries(jobs)) {
      const read = [...JSON.stringify(job).matchAll(/needs\.plan\.outputs\.([a-z-]+)/g)].map((m) => m[1]);
      for (const output of read) {
        if (!PLAN_OUTPUTS.includes(output)) problems.push(`${where} job ${name} reads plan output ${output}, which make pipeline-plan does not write (${fix})`);
      }
      const role = roleOf(job);
      if (job.permissions?.['id-token'] === 'write' && role === undefined) {
        problems.push(`${where} job ${name} may ask for an OIDC token but assumes no role of its part (${fix})`);
      }
      if (role === undefined) continue;
      const stage = PIPELINE_STAGES.find((s) => role.startsWith(ACCOUNT(s)));
      if (stage === undefined) {
        problems.push(`${where} job ${name}: role ${role} is not in a stage's account (vars.FANOUT_<STAGE>_ACCOUNT) (${fix})`);
        continue;
      }
      const matrix = String(job.strategy?.matrix?.part ?? '');
      const part = matrix === '' ? TABLES_PART : '${{ matrix.part.crate }}';
      const deploys = runs(job).includes('make deploy');
      const expected = ACCOUNT(stage) + (deploys ? deployRoleName(stage, part) : diffRoleName(stage, part));
      if (role !== expected) problems.push(`${where} job ${name} assumes ${role}, not its part's ${expected} (${fix})`);
      if (deploys) {
        if (job.environment !== environmentName(stage, part)) {
          problems.push(`${where} job ${name} runs in environment ${job.environment}, not ${environmentName(stage, part)}, the one its role trusts (${fix})`);
        }
        if (!runs(job).includes(`STAGE=${stage} `)) problems.push(`${where} job ${name} deploys another stage than its role's ${stage} (${fix})`);
        if (part === TABLES_PART && !runs(job).includes(`STACK=${TABLES_STACK} `)) problems.push(`${where} job ${name} must deploy ${TABLES_STACK} (${fix})`);
        const approval = stage === 'prod' ? "inputs.accept-broadening && 'never' || 'broadening'" : undefined;
        const said = JSON.stringify(job.steps);
        if (approval !== undefined && !said.includes(approval)) problems.push(`${where} job ${name}: prod deploys with APPROVAL=broadening unless a dispatch accepts it (${fix})`);
        if (stage === 'prod' && !(job.needs ?? []).some((n: string) => n.endsWith('-dev'))) {
          problems.push(`${where} job ${name}: prod waits for dev (needs a -dev job) (${fix})`);
        }
      } else if (!runs(job).includes('make diff') || !runs(job).includes('GITHUB_STEP_SUMMARY')) {
        problems.push(`${where} job ${name}: a diff role's job runs make diff into the job summary (${fix})`);
      }
    }
  }
  return problems;
}
