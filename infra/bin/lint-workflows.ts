#!/usr/bin/env node
// actionlint over .github/workflows/*.yml (lib/workflow-lint.ts), for `make test-infra`: one
// line per finding, exit 1 on any.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WORKSPACE_ROOT } from '../lib/stream-consumer';
import { actionlint } from '../lib/workflow-lint';

const dir = path.join(WORKSPACE_ROOT, '.github', 'workflows');
const files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));
actionlint(Object.fromEntries(files.map((f) => [f, fs.readFileSync(path.join(dir, f), 'utf8')]))).then(
  (findings) => {
    findings.forEach((f) => console.error(f));
    console.log(`actionlint: ${files.length} workflows, ${findings.length} findings`);
    process.exit(files.length > 0 && findings.length === 0 ? 0 : 1);
  },
  (err) => {
    console.error(`actionlint: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
