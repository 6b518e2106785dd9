#!/usr/bin/env node
// What a change needs (lib/pipeline.ts), for the workflows in .github/workflows/ and for
// `make e2e`'s run of one team's pipeline:
//   node dist/bin/pipeline-plan.js --since <git ref>     the files changed since that commit
//   node dist/bin/pipeline-plan.js --files <path>...     these files
//   node dist/bin/pipeline-plan.js --all                 every part (a first push, a dispatch)
//   (`make pipeline-plan SINCE=<ref>` or `FILES="<path>..."`, or neither for --all)
// Prints the plan as JSON; with GITHUB_OUTPUT set, also writes the job outputs the workflows
// read: full-test, test-consumers, deploy-tables, deploy-consumers, deploy-parts (the tables
// and the consumers, for the pull request's diffs): JSON lists of {crate, stack, team}, the
// tables as crate `tables`. A registry or CODEOWNERS that does not add up exits 1, naming the fix.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { Part, PipelineError, pipelineParts, plan, TABLES_PART } from '../lib/pipeline';
import { WORKSPACE_ROOT } from '../lib/stream-consumer';

function changedFiles(args: string[], parts: Part[]): string[] {
  const [flag, ...rest] = args;
  if (flag === '--files' && rest.length > 0) return rest;
  if (flag === '--all') return parts.flatMap((p) => p.paths.slice(0, 1));
  if (flag === '--since' && rest.length === 1) {
    // A first push reports an all-zero "before": everything is new.
    if (/^0+$/.test(rest[0])) return parts.flatMap((p) => p.paths.slice(0, 1));
    try {
      const out = execFileSync('git', ['diff', '--name-only', `${rest[0]}...HEAD`], { cwd: WORKSPACE_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      return out.split('\n').filter((line) => line !== '');
    } catch {
      // A commit this clone does not have (history rewritten by a force push): plan it all.
      console.error(`fanout: ${rest[0]} is not a commit of this clone; planning every part`);
      return parts.flatMap((p) => p.paths.slice(0, 1));
    }
  }
  throw new PipelineError('usage: pipeline-plan (--since <git ref> | --files <path>... | --all)');
}

const matrix = (list: readonly Part[]) => JSON.stringify(list.map((p) => ({ crate: p.part, stack: p.stack, team: p.team })));

try {
  const parts = pipelineParts();
  const planned = plan(changedFiles(process.argv.slice(2), parts), parts);
  const consumers = planned.deploy.filter((p) => p.part !== TABLES_PART);
  const outputs = {
    'full-test': String(planned.fullTest),
    'test-consumers': matrix(planned.testConsumers),
    'deploy-tables': String(planned.deploy.some((p) => p.part === TABLES_PART)),
    'deploy-consumers': matrix(consumers),
    'deploy-parts': matrix(planned.deploy),
  };
  console.log(JSON.stringify(outputs, null, 2));
  if (process.env.GITHUB_OUTPUT) {
    fs.appendFileSync(process.env.GITHUB_OUTPUT, Object.entries(outputs).map(([k, v]) => `${k}=${v}\n`).join(''));
  }
} catch (err) {
  console.error(`fanout: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
