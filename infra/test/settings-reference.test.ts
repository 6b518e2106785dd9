// docs/settings.md is generated from the code that reads the settings (lib/settings-reference.ts):
// the page must be what the code renders, every field must say what it means, and every
// context key the code reads must be declared (lib/context-keys.ts), and none declared unread.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { CONTEXT_KEYS } from '../lib/context-keys';
import { REGISTRY_DIR } from '../lib/settings';
import { registryFields, settingsReference, SETTINGS_SOURCE } from '../lib/settings-reference';
import { WORKSPACE_ROOT } from '../lib/stream-consumer';

const PAGE = path.join(WORKSPACE_ROOT, 'docs', 'settings.md');

function sources(): string {
  const dirs = ['infra/lib', 'infra/lib/consumers', 'infra/bin'].map((d) => path.join(WORKSPACE_ROOT, d));
  return dirs
    .flatMap((d) => fs.readdirSync(d).filter((f) => f.endsWith('.ts')).map((f) => fs.readFileSync(path.join(d, f), 'utf8')))
    .join('\n');
}

describe('the settings reference', () => {
  it('docs/settings.md is what the code renders', () => {
    assert.equal(fs.readFileSync(PAGE, 'utf8'), settingsReference(), 'docs/settings.md differs from the code: run `make settings-reference`');
  });

  it('every registry field says what it means', () => {
    assert.deepEqual(registryFields().filter((f) => f.meaning === '').map((f) => f.path), []);
  });

  it('follows the code: a field renamed in lib/settings.ts is renamed in the page', () => {
    const renamed = fs.readFileSync(SETTINGS_SOURCE, 'utf8').replace(/\bbatchSize: number;/, 'recordsPerBatch: number;');
    const paths = registryFields(renamed).map((f) => f.path);
    assert.ok(paths.includes('eventSourceMapping.recordsPerBatch') && !paths.includes('eventSourceMapping.batchSize'));
  });

  it('every context key the code reads is declared, and every declared key is read', () => {
    const code = sources();
    const read = new Set<string>();
    for (const m of code.matchAll(/(?:\bcontext|optionalContext)\(\s*\w+\s*,\s*'([a-zA-Z]+)'|tryGetContext\('fanout:([a-zA-Z]+)'\)/g)) read.add(m[1] ?? m[2]);
    read.add('pageSubscriptions').add('ticketSubscriptions'); // subscriptionsKey(severity)
    for (const file of fs.readdirSync(REGISTRY_DIR)) {
      const entry = JSON.parse(fs.readFileSync(path.join(REGISTRY_DIR, file), 'utf8'));
      for (const key of Object.values(entry.environment.fromContext ?? {})) read.add(key as string);
    }
    const declared = new Set(CONTEXT_KEYS.map((k) => k.key));
    assert.deepEqual([...read].filter((k) => !declared.has(k)).sort(), [], 'read but not declared in lib/context-keys.ts');
    assert.deepEqual([...declared].filter((k) => !read.has(k)).sort(), [], 'declared in lib/context-keys.ts but never read');
  });
});
