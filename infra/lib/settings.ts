// The consumers' knobs, from consumers.json: the one copy shared with the local event source
// mapping (crates/local), so what runs locally is what is deployed.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface FunctionSettings {
  memoryMiB: number;
  timeoutSeconds: number;
  reservedConcurrency: number;
  maxConcurrency: number;
  why: string;
}

export interface EventSourceMappingSettings {
  startingPosition: 'TRIM_HORIZON' | 'LATEST';
  batchSize: number;
  maxBatchingWindowSeconds: number;
  parallelizationFactor: number;
  bisectBatchOnFunctionError: boolean;
  maximumRetryAttempts: number;
  maximumRecordAgeSeconds: number;
  reportBatchItemFailures: boolean;
  filters: Record<string, unknown>[];
  why: string;
}

export interface ConsumerSettings {
  crate: string;
  ledgerKeyPrefix: string | null;
  function: FunctionSettings;
  eventSourceMapping: EventSourceMappingSettings;
  alarms: { iteratorAgeMaxSeconds: number };
  environment: { required: string[]; optional: string[] };
}

export type ConsumerName = 'WelcomeEmail' | 'CrmSync' | 'SearchWarm' | 'AuditLog';

export const SETTINGS_FILE = path.join(__dirname, '..', '..', 'consumers.json');

/** DynamoDB Streams keeps records for 24 hours. */
export const STREAM_RETENTION_SECONDS = 24 * 3600;

export function loadSettings(file: string = SETTINGS_FILE): Record<ConsumerName, ConsumerSettings> {
  const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as { consumers: Record<ConsumerName, ConsumerSettings> };
  for (const [name, settings] of Object.entries(parsed.consumers)) {
    validate(name, settings);
  }
  return parsed.consumers;
}

/** Refuses settings that would break the stream contract, at synth time. */
function validate(name: string, s: ConsumerSettings): void {
  const esm = s.eventSourceMapping;
  const fail = (why: string) => {
    throw new Error(`consumers.json: ${name}: ${why}`);
  };
  if (esm.parallelizationFactor !== 1) fail('parallelizationFactor must be 1 (per-key order across batches)');
  if (!esm.reportBatchItemFailures) fail('reportBatchItemFailures must be on');
  if (!esm.bisectBatchOnFunctionError) fail('bisectBatchOnFunctionError must be on');
  if (esm.maximumRetryAttempts < 0 || esm.maximumRetryAttempts > 100) fail('maximumRetryAttempts must be bounded (0..100)');
  if (esm.maximumRecordAgeSeconds < 60 || esm.maximumRecordAgeSeconds > STREAM_RETENTION_SECONDS / 2) {
    fail('maximumRecordAgeSeconds must be 60..43200: half the 24 h retention stays for a replay');
  }
  if (esm.batchSize < 1 || esm.batchSize > 10000) fail('batchSize must be 1..10000');
  if (esm.maxBatchingWindowSeconds < 0 || esm.maxBatchingWindowSeconds > 300) fail('maxBatchingWindowSeconds must be 0..300');
  if (s.alarms.iteratorAgeMaxSeconds > 2 * 3600) fail('the iterator-age alarm must fire long before 24 h: at most 2 h');
  if (s.function.timeoutSeconds > 900) fail('timeoutSeconds must be at most 900');
}

/** The context in cdk.json, for synthesis outside the CDK CLI (tests, template linting). */
export function cdkJsonContext(): Record<string, unknown> {
  const file = path.join(__dirname, '..', '..', 'cdk.json');
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { context: Record<string, unknown> }).context;
}
