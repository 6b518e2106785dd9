#!/usr/bin/env node
// `make settings-reference`: writes docs/settings.md from the code (lib/settings-reference.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { settingsReference } from '../lib/settings-reference';
import { WORKSPACE_ROOT } from '../lib/stream-consumer';

const page = path.join(WORKSPACE_ROOT, 'docs', 'settings.md');
fs.writeFileSync(page, settingsReference());
console.log(`wrote ${path.relative(WORKSPACE_ROOT, page)}`);
