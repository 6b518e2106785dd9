// The pipelines of .github/workflows/, computed from the registry: which checks a change
// needs, which stacks a merge deploys, and the names (GitHub environments, deploy roles) that
// tie a team's jobs to its own stack. The workflows list no consumer: they ask
// `bin/pipeline-plan.ts` (this module) on every run, so a new registry entry gets its jobs
// without a workflow edit. The roles are made by PipelineRolesStack from the same names.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadSettings, REGISTRY_DIR } from './settings';
import { WORKSPACE_ROOT } from './stream-consumer';

/** The stages a merge goes through, in order: `dev` at once, `prod` after the team approves. */
export const PIPELINE_STAGES = ['dev', 'prod'] as const;
export type PipelineStage = (typeof PIPELINE_STAGES)[number];

/** What the tables pipeline deploys: its part name in roles and environments. */
export const TABLES_PART = 'tables';
export const TABLES_STACK = 'FanoutTables';
/** The team that owns everything not a consumer's (CODEOWNERS `*`). */
export const PLATFORM_TEAM = '@fanout/platform';

/** One deployable part: a consumer (its crate name) or the tables. */
export interface Part {
  /** The consumer's crate, or `tables`. */
  readonly part: string;
  /** Its stack without the stage (`CrmSync`, `FanoutTables`). */
  readonly stack: string;
  /** The team CODEOWNERS names for it. */
  readonly team: string;
  /** The paths that are its own (a prefix ending in `/`, or a file). */
  readonly paths: readonly string[];
}

/** The GitHub environment a part's deploy job of `stage` runs in: `<stage>-<part>`. */
export function environmentName(stage: string, part: string): string {
  return `${stage}-${part}`;
}

/** The role the deploy jobs of `part` assume in `stage`: `fanout-<stage>-deploy-<part>`. */
export function deployRoleName(stage: string, part: string): string {
  return `fanout-${stage}-deploy-${part}`;
}

/** The read-only role a pull request's `cdk diff` of `part` assumes: `fanout-<stage>-diff-<part>`. */
export function diffRoleName(stage: string, part: string): string {
  return `fanout-${stage}-diff-${part}`;
}

/** The paths of a consumer's folder: its crate, its registry entry, its stack class. */
export function consumerPaths(crate: string): string[] {
  return [`crates/${crate}/`, `infra/consumers/${crate}.json`, `infra/lib/consumers/${crate}.ts`];
}

/** The tables stack's own file. */
const TABLES_PATHS = ['infra/lib/tables-stack.ts'];

/**
 * Shared files whose change reaches every deployed consumer: the code each binary is built
 * from, the workspace's lock and toolchain, and the shared CDK app (which also builds the
 * tables stack). Anything else not a part's own (tests, tools, docs, fanout-ops) deploys nothing.
 */
const SHARED_BY_CONSUMERS = ['crates/fanout-core/', 'Cargo.toml', 'Cargo.lock', 'rust-toolchain.toml'];
const SHARED_BY_ALL_STACKS = ['infra/lib/', 'infra/bin/app.ts', 'infra/cdk.json', 'infra/package.json', 'infra/package-lock.json'];

function under(file: string, prefixes: readonly string[]): boolean {
  return prefixes.some((p) => (p.endsWith('/') ? file.startsWith(p) : file === p));
}

/** A registry, CODEOWNERS or workspace that the pipelines cannot be computed from. */
export class PipelineError extends Error {}

/** CODEOWNERS' owner of `file` (a path from the root): the last matching line, as on GitHub. */
export function ownerOf(codeowners: string, file: string): string | undefined {
  let owner: string | undefined;
  for (const line of codeowners.split('\n')) {
    const [pattern, team] = line.trim().split(/\s+/);
    if (!pattern || pattern.startsWith('#') || !team) continue;
    const anchored = pattern.replace(/^\//, '');
    if (pattern === '*' || (anchored.endsWith('/') ? file.startsWith(anchored) : file === anchored)) owner = team;
  }
  return owner;
}

/** Where the parts are read from: the checked-in files, or a test's own. */
export interface PartSources {
  registryDir?: string;
  codeowners?: string;
  /** The folders under crates/. */
  crateDirs?: string[];
  /** Whether a crate's Cargo.toml declares it a consumer (`[package.metadata.fanout]`). */
  declaresConsumer?: (crate: string) => boolean;
}

/**
 * Every deployable part, the tables first. Refused, naming the file and the fix: a registry
 * entry whose crate or entry has no team of its own in CODEOWNERS, and a consumer folder
 * (a crate declaring `[package.metadata.fanout]`, or any crate not named `fanout-*`) without a
 * registry entry.
 */
export function pipelineParts(sources: PartSources = {}): Part[] {
  const registryDir = sources.registryDir ?? REGISTRY_DIR;
  const codeowners = sources.codeowners ?? fs.readFileSync(path.join(WORKSPACE_ROOT, '.github/CODEOWNERS'), 'utf8');
  const crateDirs = sources.crateDirs ?? fs.readdirSync(path.join(WORKSPACE_ROOT, 'crates'));
  const declaresConsumer =
    sources.declaresConsumer ??
    ((crate: string) => {
      const manifest = path.join(WORKSPACE_ROOT, 'crates', crate, 'Cargo.toml');
      return fs.existsSync(manifest) && fs.readFileSync(manifest, 'utf8').includes('[package.metadata.fanout]');
    });
  const settings = loadSettings(registryDir);
  const problems: string[] = [];
  const parts: Part[] = [
    { part: TABLES_PART, stack: TABLES_STACK, team: ownerOf(codeowners, TABLES_PATHS[0]) ?? PLATFORM_TEAM, paths: TABLES_PATHS },
  ];
  const registered = new Set<string>();
  for (const [stack, entry] of Object.entries(settings)) {
    registered.add(entry.crate);
    const team = ownerOf(codeowners, `crates/${entry.crate}/Cargo.toml`);
    const entryOwner = ownerOf(codeowners, `infra/consumers/${entry.crate}.json`);
    if (team === undefined || team === PLATFORM_TEAM || entryOwner !== team) {
      problems.push(
        `infra/consumers/${entry.crate}.json: crates/${entry.crate}/ and its registry entry need one owning team of their own in .github/CODEOWNERS ` +
          `(now ${team ?? 'none'} and ${entryOwner ?? 'none'}); add the lines ` +
          `"/crates/${entry.crate}/ @org/team" and "/infra/consumers/${entry.crate}.json @org/team" (make new-consumer writes them)`,
      );
      continue;
    }
    parts.push({ part: entry.crate, stack, team, paths: consumerPaths(entry.crate) });
  }
  for (const crate of crateDirs) {
    if (registered.has(crate) || !(declaresConsumer(crate) || !crate.startsWith('fanout-'))) continue;
    problems.push(
      `crates/${crate}/: a consumer folder without a registry entry: add infra/consumers/${crate}.json ` +
        `(make new-consumer NAME=${crate} writes one to start from), or name a platform crate fanout-*`,
    );
  }
  if (problems.length > 0) throw new PipelineError(problems.join('\n'));
  return parts;
}

/** What a change needs: the checks of a pull request and the deploys of a merge. */
export interface Plan {
  /** `make test`: a change outside the consumers' own folders (core, infra, the workspace, docs). */
  readonly fullTest: boolean;
  /** `make test-consumer C=<crate>` each, when not `fullTest`. */
  readonly testConsumers: readonly Part[];
  /** The parts a merge deploys, stage by stage: the tables first when they changed. */
  readonly deploy: readonly Part[];
}

/** The plan for a change of `files` (paths from the root). */
export function plan(files: readonly string[], parts: readonly Part[]): Plan {
  const consumers = parts.filter((p) => p.part !== TABLES_PART);
  const owned = (file: string) => parts.find((p) => under(file, p.paths));
  let fullTest = false;
  const deploy = new Set<string>();
  const tested = new Set<string>();
  for (const file of files) {
    const part = owned(file);
    if (part !== undefined && part.part !== TABLES_PART) {
      tested.add(part.part);
      deploy.add(part.part);
      continue;
    }
    fullTest = true;
    if (part !== undefined) {
      deploy.add(TABLES_PART);
      continue;
    }
    if (under(file, SHARED_BY_CONSUMERS) || under(file, SHARED_BY_ALL_STACKS)) consumers.forEach((c) => deploy.add(c.part));
    if (under(file, SHARED_BY_ALL_STACKS)) deploy.add(TABLES_PART);
  }
  return {
    fullTest,
    testConsumers: fullTest ? [] : consumers.filter((c) => tested.has(c.part)),
    deploy: parts.filter((p) => deploy.has(p.part)),
  };
}
