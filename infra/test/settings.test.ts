import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { loadSettings, SETTINGS_FILE } from '../lib/settings';

function withChange(change: (s: any) => void): string {
  const parsed = JSON.parse(fs.readFileSync(SETTINGS_FILE, 'utf8'));
  change(parsed.consumers.WelcomeEmail);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fanout-')), 'consumers.json');
  fs.writeFileSync(file, JSON.stringify(parsed));
  return file;
}

describe('consumers.json validation refuses settings that break the stream contract', () => {
  const cases: [string, (s: any) => void, RegExp][] = [
    ['parallelization above 1', (s) => (s.eventSourceMapping.parallelizationFactor = 2), /parallelizationFactor/],
    ['record age near retention', (s) => (s.eventSourceMapping.maximumRecordAgeSeconds = 86400), /maximumRecordAgeSeconds/],
    ['unbounded retries', (s) => (s.eventSourceMapping.maximumRetryAttempts = -1), /maximumRetryAttempts/],
    ['partial batch responses off', (s) => (s.eventSourceMapping.reportBatchItemFailures = false), /reportBatchItemFailures/],
    ['bisect off', (s) => (s.eventSourceMapping.bisectBatchOnFunctionError = false), /bisect/],
    ['late iterator-age alarm', (s) => (s.alarms.iteratorAgeMaxSeconds = 20 * 3600), /iterator-age/],
  ];
  for (const [what, change, message] of cases) {
    it(what, () => assert.throws(() => loadSettings(withChange(change)), message));
  }
  it('accepts the shipped file', () => assert.equal(Object.keys(loadSettings()).length, 4));
});
