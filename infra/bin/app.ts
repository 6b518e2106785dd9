#!/usr/bin/env node
import * as path from 'node:path';
import * as cdk from 'aws-cdk-lib';
import { buildApp } from '../lib/app';

const app = new cdk.App();
// `-c fanout:registryDir=<dir>` deploys from another registry (one <crate>.json per consumer),
// for example an environment's own settings. @default infra/consumers/
const registryDir = app.node.tryGetContext('fanout:registryDir');
try {
  buildApp(app, undefined, typeof registryDir === 'string' && registryDir !== '' ? path.resolve(registryDir) : undefined);
} catch (err) {
  // A refused setting is the user's to fix: say what, without a stack trace.
  console.error(`fanout: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
