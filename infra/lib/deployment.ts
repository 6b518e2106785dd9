// Deployment choices that are not a consumer's own knobs, read from CDK context (cdk.json or
// `-c fanout:<key>=<value>`), each with its default and refusal.
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';

/** Deployment choices read from CDK context. A missing required one names itself. */
export function context(scope: Construct, key: string): string {
  const value = scope.node.tryGetContext(`fanout:${key}`);
  if (typeof value !== 'string' || value === '') {
    throw new Error(`missing CDK context fanout:${key} (set it in cdk.json or with -c fanout:${key}=...)`);
  }
  return value;
}

function optionalContext(scope: Construct, key: string): string | undefined {
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
