#!/usr/bin/env node
// Writes the CloudFormation templates without the Rust cross-build, for the template linters
// in `make test` (cfn-lint, and parliament over every IAM policy).
// Usage: node dist/bin/synth-templates.js <outdir> [<account> <region> [pipeline]]
// Without an account and region the stacks are env-agnostic. `pipeline` synthesizes stage
// `dev` with its pipeline roles (FanoutPipelineRoles-dev), for an example repository.
import * as cdk from 'aws-cdk-lib';
import { buildApp } from '../lib/app';
import { cdkJsonContext, EXAMPLE_CONTEXT } from '../lib/settings';

const [outdir = 'cdk.out.lint', account, region, pipeline] = process.argv.slice(2);
const roles = pipeline === 'pipeline' ? { 'fanout:stage': 'dev', 'fanout:githubRepository': 'acme/fanout', 'fanout:githubOidcProvider': 'create' } : {};
const app = new cdk.App({ outdir, context: { ...cdkJsonContext(), ...EXAMPLE_CONTEXT, ...roles, 'aws:cdk:bundling-stacks': [] } });
buildApp(app, { account, region });
app.synth();
