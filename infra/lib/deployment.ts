// Deployment choices that are not a consumer's own knobs, read from CDK context (cdk.json or
// `-c fanout:<key>=<value>`), each with its default and refusal.
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { declared } from './context-keys';

/** Deployment choices read from CDK context. A missing required one names itself. */
export function context(scope: Construct, key: string): string {
  declared(key);
  const value = scope.node.tryGetContext(`fanout:${key}`);
  if (typeof value !== 'string' || value === '') {
    throw new Error(`missing CDK context fanout:${key} (set it in cdk.json or with -c fanout:${key}=...)`);
  }
  return value;
}

/** An optional deployment choice; empty counts as unset. */
export function optionalContext(scope: Construct, key: string): string | undefined {
  declared(key);
  const value = scope.node.tryGetContext(`fanout:${key}`);
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/**
 * `fanout:architecture`: the functions' instruction set. @default `arm64` (Graviton: cheaper
 * per GB-second). `x86_64` is for a local AWS that runs functions as local processes on an
 * x86_64 machine (ministack).
 */
export function architecture(scope: Construct): lambda.Architecture {
  const value = optionalContext(scope, 'architecture') ?? 'arm64';
  switch (value) {
    case 'arm64':
      return lambda.Architecture.ARM_64;
    case 'x86_64':
      return lambda.Architecture.X86_64;
    default:
      throw new Error(`CDK context fanout:architecture must be arm64 or x86_64, not ${JSON.stringify(value)}`);
  }
}

/**
 * `fanout:buildProfile`: the Cargo profile the bundled binaries are built with. @default
 * `release` (what AWS should run). `dev` builds in a third of the time, for a local AWS.
 */
export function buildProfile(scope: Construct): string {
  const value = optionalContext(scope, 'buildProfile') ?? 'release';
  if (!['release', 'dev'].includes(value)) {
    throw new Error(`CDK context fanout:buildProfile must be release or dev, not ${JSON.stringify(value)}`);
  }
  return value;
}

/** Who an alarm reaches: an email address, or an HTTPS endpoint (a chat webhook). */
export type AlarmSubscriber = { kind: 'email'; address: string } | { kind: 'https'; url: string };

/** How urgent an alarm is: `page` wakes a person (loss, a stopped consumer); `ticket` can wait for working hours. */
export type Severity = 'page' | 'ticket';
export const SEVERITIES: readonly Severity[] = ['page', 'ticket'];

/** The context key that names the app-wide subscribers of `severity`. */
export function subscriptionsKey(severity: Severity): string {
  return `fanout:${severity}Subscriptions`;
}

/**
 * The subscribers of one stack's `severity` topic: `own` (a consumer's registry entry,
 * `alarms.pageSubscriptions` / `alarms.ticketSubscriptions`) when set, else
 * `fanout:pageSubscriptions` / `fanout:ticketSubscriptions` (app-wide: a comma-separated list,
 * a JSON list in cdk.json, or `none`). No default: a topic whose alarms would reach nobody
 * fails synthesis unless the settings say `none` on purpose.
 */
export function alarmSubscribers(scope: Construct, owner: string, severity: Severity, own: string[] | string | undefined): AlarmSubscriber[] {
  if (scope.node.tryGetContext('fanout:alarmSubscriptions') !== undefined) {
    throw new Error(
      'CDK context fanout:alarmSubscriptions was split by severity: set fanout:pageSubscriptions (records lost, a consumer stopped) and fanout:ticketSubscriptions (the rest) instead',
    );
  }
  const key = subscriptionsKey(severity);
  const where = own !== undefined ? `consumers/${owner}.json alarms.${severity}Subscriptions` : `CDK context ${key}`;
  const raw = own ?? scope.node.tryGetContext(key);
  const entries = (Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : [])
    .map((entry: unknown) => (typeof entry === 'string' ? entry.trim() : ''))
    .filter((entry: string) => entry !== '');
  if (entries.length === 1 && entries[0] === 'none') return [];
  if (entries.length === 0) {
    throw new Error(
      `${owner}: its ${severity} alarms would reach nobody. Set ${where} to the email addresses and HTTPS endpoints that ` +
        `should hear them (-c ${key}=oncall@example.com,https://chat.example.com/hook), ` +
        `or to "none" to deploy without a subscriber on purpose.`,
    );
  }
  return entries.map((entry: string) => {
    if (entry === 'none') throw new Error(`${where}: "none" cannot be listed beside subscribers`);
    if (/^https:\/\/[^\s/]+/.test(entry)) return { kind: 'https', url: entry };
    if (/^[^\s@/:]+@[^\s@/:]+\.[^\s@/:]+$/.test(entry)) return { kind: 'email', address: entry };
    throw new Error(`${where}: ${JSON.stringify(entry)} is neither an email address nor an https:// endpoint`);
  });
}

/**
 * `fanout:localAws`: `true` when deploying into a local AWS (ministack), which refuses
 * metric-math and Metrics Insights alarms; those are then left out (Stopped, the Kinesis
 * replication alarms, the tables' system errors; docs/deploy.md "What the local AWS does not emulate"). @default false:
 * every AWS synthesis has every alarm.
 */
export function localAws(scope: Construct): boolean {
  const given = scope.node.tryGetContext('fanout:localAws');
  const value = typeof given === 'boolean' ? String(given) : (optionalContext(scope, 'localAws') ?? 'false');
  if (!['true', 'false'].includes(value)) throw new Error(`CDK context fanout:localAws must be true or false, not ${JSON.stringify(value)}`);
  return value === 'true';
}

/**
 * `fanout:kinesisMappingOnStream`: `true` points a Kinesis consumer's event source mapping at the
 * Kinesis stream itself (shared-throughput polling) and leaves its enhanced fan-out consumer
 * out. Local only: ministack refuses a stream consumer's ARN as a mapping source ("Invalid event
 * source ARN") and its CloudFormation has no AWS::Kinesis::StreamConsumer. Refused unless
 * `fanout:localAws=true`, so no AWS deployment loses its dedicated pipe. @default false
 */
export function kinesisMappingOnStream(scope: Construct): boolean {
  const given = scope.node.tryGetContext('fanout:kinesisMappingOnStream');
  const value = typeof given === 'boolean' ? String(given) : (optionalContext(scope, 'kinesisMappingOnStream') ?? 'false');
  if (!['true', 'false'].includes(value)) {
    throw new Error(`CDK context fanout:kinesisMappingOnStream must be true or false, not ${JSON.stringify(value)}`);
  }
  if (value === 'true' && !localAws(scope)) {
    throw new Error('CDK context fanout:kinesisMappingOnStream=true is for a local AWS only (with fanout:localAws=true): on AWS each Kinesis consumer reads through its own enhanced fan-out consumer');
  }
  return value === 'true';
}
