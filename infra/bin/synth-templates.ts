#!/usr/bin/env node
// Writes the CloudFormation templates without the Rust cross-build, for cfn-lint in `make test`.
// Usage: node dist/bin/synth-templates.js <outdir>
import * as cdk from 'aws-cdk-lib';
import { buildApp } from '../lib/app';
import { cdkJsonContext } from '../lib/settings';

const outdir = process.argv[2] ?? 'cdk.out.lint';
const app = new cdk.App({ outdir, context: { ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [] } });
buildApp(app);
app.synth();
