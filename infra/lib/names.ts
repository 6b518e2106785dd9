// The names a deployment gives what a second deployment in the same account and region would
// collide on: stacks, SSM parameters, dashboards, enhanced fan-out consumers. With
// `fanout:stage` each carries the stage; without, they are today's names. Everything else
// (tables, queues, functions, log groups, alarms, topics, keys, buckets) is named by
// CloudFormation from its stack's name, so the stage reaches it through the stack.
// fanout-ops and the local stack compute the same names (crates/fanout-registry/src/names.rs,
// checked equal by the workspace tidy test).
import * as cdk from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { optionalContext } from './deployment';

/**
 * `fanout:stage`: which deployment this is (`dev`, `prod`), so several live side by side in
 * one account and region. 1 to 16 of `a-z`, `0-9`, `-`. @default none: today's names.
 */
export function stage(scope: Construct): string | undefined {
  const value = optionalContext(scope, 'stage');
  if (value !== undefined && !/^[a-z0-9-]{1,16}$/.test(value)) {
    throw new Error(`CDK context fanout:stage must be 1 to 16 of a-z, 0-9 and -, not ${JSON.stringify(value)}`);
  }
  return value;
}

/** Stack `base` of this deployment: `base`, or `base-<stage>`. */
export function stackName(scope: Construct, base: string): string {
  const s = stage(scope);
  return s === undefined ? base : `${base}-${s}`;
}

/** A physical name of this deployment: `fanout-<name>`, or `fanout-<stage>-<name>`. */
export function physicalName(scope: Construct, name: string): string {
  const s = stage(scope);
  return s === undefined ? `fanout-${name}` : `fanout-${s}-${name}`;
}

/** What `FanoutTables` publishes for the consumer stacks, under `/fanout[/<stage>]/`. */
export const PARAMETER_PATHS = {
  usersTableName: 'tables/users/name',
  usersStreamArn: 'tables/users/stream-arn',
  usersStreamViewType: 'tables/users/stream-view-type',
  usersKinesisStreamArn: 'tables/users/kinesis-stream-arn',
  ledgerTableName: 'tables/ledger/name',
  auditTableName: 'tables/audit/name',
} as const;
export type ParameterKey = keyof typeof PARAMETER_PATHS;

/** The SSM parameter `key` of this deployment: `/fanout/<path>`, or `/fanout/<stage>/<path>`. */
export function parameterName(scope: Construct, key: ParameterKey): string {
  return parameterPrefix(scope) + PARAMETER_PATHS[key];
}

/**
 * The SSM parameter a consumer stack publishes its registry entry under (what fanout-ops
 * needs of it, without a checkout): `/fanout[/<stage>]/consumers/<crate>`.
 */
export function consumerParameterName(scope: Construct, crate: string): string {
  return `${parameterPrefix(scope)}consumers/${crate}`;
}

/** The ARN of this deployment's parameters below `path` (`tables/*`, `consumers/*`). */
export function parameterArn(scope: Construct, path: string): string {
  return cdk.Stack.of(scope).formatArn({ service: 'ssm', resource: 'parameter', resourceName: (parameterPrefix(scope) + path).slice(1) });
}

function parameterPrefix(scope: Construct): string {
  const s = stage(scope);
  return s === undefined ? '/fanout/' : `/fanout/${s}/`;
}
