// The registry of consumers: one file per consumer in infra/consumers/, owned by its team
// (CODEOWNERS), holding every knob. The one copy shared with the local stack and the tests
// (crates/fanout-testkit/src/registry.rs), so what runs locally is what is deployed.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface FunctionSettings {
  /** The function's memory (and so its CPU share), MiB. */
  memoryMiB: number;
  /** The function's timeout, at most 900 s and at least twice `recordBudgetSeconds` plus 5 s (a redelivery waits out a crashed holder's lease). */
  timeoutSeconds: number;
  /** What one record's work may take at most: no record starts with less time left. */
  recordBudgetSeconds: number;
  /** Reserved concurrency: at least one per shard the mapping reads (0 stops the consumer). */
  reservedConcurrency: number;
  /** Item keys processed at once within a batch (`MAX_CONCURRENCY`). */
  maxConcurrency: number;
  /** Why these values. */
  why: string;
}

export interface EventSourceMappingSettings {
  /** AT_TIMESTAMP only on Kinesis: where a switch starts reading (docs/kinesis.md "Switching a consumer to Kinesis"). */
  startingPosition: 'TRIM_HORIZON' | 'LATEST' | 'AT_TIMESTAMP';
  /** With AT_TIMESTAMP: seconds since the epoch. */
  startingPositionTimestamp?: number;
  /** Records per invocation, 1..10000. */
  batchSize: number;
  /** Seconds the mapping may wait to fill a batch, 0..300. */
  maxBatchingWindowSeconds: number;
  /** Must be 1: a user's changes stay in order across batches. */
  parallelizationFactor: number;
  /** Must be true: a failing batch is split to find the record that fails. */
  bisectBatchOnFunctionError: boolean;
  /** Retries of a failing batch before the OnFailure destination, 2..100 (the second retry takes over a claim a crashed invocation left). */
  maximumRetryAttempts: number;
  /** Records older than this go to the OnFailure destination, 60..43200 s (half the 24 h stream stays for a replay). */
  maximumRecordAgeSeconds: number;
  /** Must be true: partial batch responses, so one failing record does not redeliver the batch. */
  reportBatchItemFailures: boolean;
  /** Lambda filter criteria patterns (`{"eventName": [...]}`, `dynamodb.NewImage...`): a record no pattern matches never invokes the function. */
  filters: Record<string, unknown>[];
  /** Why these values. */
  why: string;
}

export interface AlarmSettings {
  /** IteratorAgeHigh: how far behind the stream the consumer may fall. */
  iteratorAgeMaxSeconds: number;
  /**
   * DlqOldestMessageAge: how old the oldest DLQ message may get. An OnFailure message only
   * points at a stream range, trimmed 24 h after the write: at most half of
   * `24 h - maximumRecordAgeSeconds`, so there is time to redrive.
   */
  dlqOldestMessageMaxSeconds: number;
  /** Stopped: minutes of Users writes without one invocation before it fires. */
  stoppedAfterMinutes: number;
  /** Who hears the alarms that page, overriding `fanout:pageSubscriptions`; `none` for nobody. */
  pageSubscriptions?: string[] | 'none';
  /** Who hears the alarms that open a ticket, overriding `fanout:ticketSubscriptions`; `none` for nobody. */
  ticketSubscriptions?: string[] | 'none';
  /** Why these values. */
  why: string;
}

/** The function's logs: how long CloudWatch keeps them and the level Lambda passes on. */
export interface LogSettings {
  /** Days the log group keeps lines: one of CloudWatch's retentions (1, 3, 5, 7, 14, 30, 60, 90, ...). */
  retentionDays: number;
  /**
   * The application log level (Lambda's advanced logging control, which sets
   * `AWS_LAMBDA_LOG_LEVEL` for the function): TRACE, DEBUG, INFO, WARN, ERROR or FATAL.
   */
  level: 'TRACE' | 'DEBUG' | 'INFO' | 'WARN' | 'ERROR' | 'FATAL';
  /** Why these values. */
  why: string;
}
export const LOG_LEVELS: readonly LogSettings['level'][] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'];
/** The retentions CloudWatch Logs accepts, in days. */
export const LOG_RETENTION_DAYS: readonly number[] = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

/** Where the mapping sends what it gives up on. */
export type OnFailureDestination = 'dlq' | 'bucket';
export const ON_FAILURE_DESTINATIONS: readonly OnFailureDestination[] = ['dlq', 'bucket'];

export interface OnFailureSettings {
  /**
   * `dlq`: the consumer's SQS queue gets the batch's position only (shard and sequence range),
   * which redrive reads again from the stream while the stream holds it (24 h on the DynamoDB
   * stream). `bucket`: an S3 bucket of its own gets the whole batch, redrivable for as long as
   * the object is kept. Parked records go to the DLQ either way.
   */
  destination: OnFailureDestination;
  /** With `bucket`: how many days an object is kept (the bucket's lifecycle), 1..3650. */
  bucketRetentionDays?: number;
  /** Why these values. */
  why: string;
}

/**
 * What the consumer's mapping reads: the Users table's DynamoDB stream (in order, 24 h, at most
 * two readers per shard advised), or the table's Kinesis streaming destination through an
 * enhanced fan-out consumer of its own (its own 2 MB/s per shard, retention a setting; records
 * may arrive out of order or twice).
 */
export type StreamSource = 'dynamodb-stream' | 'kinesis';
export const STREAM_SOURCES: readonly StreamSource[] = ['dynamodb-stream', 'kinesis'];

/**
 * What the consumer reads each change's images as: `user`, the writer's contract
 * (`fanout_core::User`, docs/writer-contract.md), parking an item that does not decode; or
 * `raw-images`, kept as they are, parking only a change without a string `userId` key.
 * `fanout-ops check-items` judges the table's items by it.
 */
export type Decodes = 'user' | 'raw-images';
export const DECODES: readonly Decodes[] = ['user', 'raw-images'];

export interface ConsumerSettings {
  /** The stack name, such as `WelcomeEmail`. */
  stack: string;
  /** Which stream the mapping reads. */
  source: StreamSource;
  /** Why this source (readers per shard, order, retention). */
  sourceWhy: string;
  /** What it reads each change's images as. */
  decodes: Decodes;
  /** The crate, binary and file name, such as `welcome-email`. */
  crate: string;
  /** The consumer's keys in EffectLedger: `<prefix>#...`; the crate name. */
  ledgerKeyPrefix: string;
  /**
   * Whether the consumer claims its effects in the ledger. Without, it writes only the entries
   * that park a poison record once (`<prefix>#parked#<eventID>`), and IAM allows only those.
   */
  ledgerEffects: boolean;
  /**
   * How long a completed EffectLedger entry deduplicates (LEDGER_RETENTION_HOURS), and so how
   * far back `fanout-ops reconcile` can vouch for a ledger consumer's effects.
   */
  ledger: {
    /** Days an entry is kept, 2..3650; it must outlive the source's retention (synthesis names the floor). */
    retentionDays: number;
    /** Why this retention (its reconcile window and cost). */
    why: string;
  };
  /** The Lambda function. */
  function: FunctionSettings;
  /** The event source mapping on the consumer's source. */
  eventSourceMapping: EventSourceMappingSettings;
  /** Where the mapping sends a batch it gives up on. */
  onFailure: OnFailureSettings;
  /** The function's log group retention and log level. */
  logs: LogSettings;
  /**
   * CDK context keys (`fanout:<key>`) naming outside resources that must exist before the
   * stack is deployed; `fanout-ops preflight` checks each (docs/deploy.md).
   */
  prerequisites: string[];
  /** The thresholds of the consumer's alarms (docs/operations.md "When an alarm fires"). */
  alarms: AlarmSettings;
  /** The variables the function reads (docs/deploy.md "Configuration"). */
  environment: {
    /** Variables it cannot start without; must include USERS_TABLE, LEDGER_TABLE and DLQ_URL. */
    required: string[];
    /** Variables it reads when set. */
    optional: string[];
    /** Variables whose value is a CDK context value: variable -> key (`fanout:<key>`). */
    fromContext?: Record<string, string>;
  };
}

/** A consumer's stack name (`WelcomeEmail`). */
export type ConsumerName = string;

/** The registry: one `<crate>.json` per consumer. */
export const REGISTRY_DIR = path.join(__dirname, '..', '..', 'consumers');

/** DynamoDB Streams keeps records for 24 hours. */
export const STREAM_RETENTION_SECONDS = 24 * 3600;

/**
 * Every consumer of the registry, by stack name, in file-name order: the only list of
 * consumers there is. Each entry is validated; a bad one fails synthesis naming its file.
 */
export function loadSettings(dir: string = REGISTRY_DIR): Record<ConsumerName, ConsumerSettings> {
  const consumers: Record<ConsumerName, ConsumerSettings> = {};
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  if (files.length === 0) throw new Error(`${dir}: no consumer files (<crate>.json)`);
  for (const file of files) {
    const settings = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as ConsumerSettings;
    validate(`consumers/${file}`, settings);
    if (file !== `${settings.crate}.json`) throw new Error(`consumers/${file}: name the file after its crate, ${settings.crate}.json`);
    if (consumers[settings.stack]) throw new Error(`consumers/${file}: stack ${settings.stack} is declared twice`);
    consumers[settings.stack] = settings;
  }
  return consumers;
}

/** Refuses settings that would break the stream contract, at synth time. */
function validate(name: string, s: ConsumerSettings): void {
  const esm = s.eventSourceMapping;
  const fail = (why: string) => {
    throw new Error(`${name}: ${why}`);
  };
  const logs = s.logs ?? ({} as LogSettings);
  if (!LOG_RETENTION_DAYS.includes(logs.retentionDays)) {
    fail(`logs.retentionDays must be one of CloudWatch's retentions (${LOG_RETENTION_DAYS.join(', ')}), not ${JSON.stringify(logs.retentionDays)}`);
  }
  if (!LOG_LEVELS.includes(logs.level)) fail(`logs.level must be one of ${LOG_LEVELS.join(', ')}, not ${JSON.stringify(logs.level)}`);
  if (typeof logs.why !== 'string' || logs.why === '') fail('logs.why must say why this retention and level');
  const onFailure = s.onFailure ?? ({} as OnFailureSettings);
  if (!ON_FAILURE_DESTINATIONS.includes(onFailure.destination)) {
    fail(`onFailure.destination must be one of ${ON_FAILURE_DESTINATIONS.join(', ')}, not ${JSON.stringify(onFailure.destination)}`);
  }
  if (onFailure.destination === 'bucket') {
    const days = onFailure.bucketRetentionDays;
    if (!Number.isInteger(days) || (days ?? 0) < 1 || (days ?? 0) > 3650) {
      fail('onFailure.bucketRetentionDays must be a whole number of days, 1..3650: how long a batch given up on stays redrivable');
    }
  } else if (onFailure.bucketRetentionDays !== undefined) {
    fail('onFailure.bucketRetentionDays is read only with onFailure.destination bucket');
  }
  if (typeof onFailure.why !== 'string' || onFailure.why === '') fail('onFailure.why must say why this destination');
  if (!STREAM_SOURCES.includes(s.source)) fail(`source must be one of ${STREAM_SOURCES.join(', ')}, not ${JSON.stringify(s.source)}`);
  if (typeof s.sourceWhy !== 'string' || s.sourceWhy === '') fail('sourceWhy must say why this source');
  if (!DECODES.includes(s.decodes)) fail(`decodes must be one of ${DECODES.join(', ')} (what the consumer reads each change's images as), not ${JSON.stringify(s.decodes)}`);
  if (esm.startingPosition === 'AT_TIMESTAMP') {
    if (s.source !== 'kinesis') fail('startingPosition AT_TIMESTAMP exists for Kinesis only; a DynamoDB stream starts at TRIM_HORIZON or LATEST');
    if (!Number.isInteger(esm.startingPositionTimestamp) || (esm.startingPositionTimestamp ?? 0) <= 0) {
      fail('startingPosition AT_TIMESTAMP needs startingPositionTimestamp, in whole seconds since the epoch');
    }
  } else if (esm.startingPositionTimestamp !== undefined) {
    fail('startingPositionTimestamp is read only with startingPosition AT_TIMESTAMP');
  }
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
  const redriveWindow = STREAM_RETENTION_SECONDS - esm.maximumRecordAgeSeconds;
  if (!(s.alarms.dlqOldestMessageMaxSeconds >= 60) || s.alarms.dlqOldestMessageMaxSeconds > redriveWindow / 2) {
    fail(`alarms.dlqOldestMessageMaxSeconds must be 60..${redriveWindow / 2}: half of what the stream keeps after maximumRecordAgeSeconds, so an OnFailure range is redriven before it is trimmed`);
  }
  if (!Number.isInteger(s.alarms.stoppedAfterMinutes) || s.alarms.stoppedAfterMinutes < 5 || s.alarms.stoppedAfterMinutes > 1440) {
    fail('alarms.stoppedAfterMinutes must be a whole number of minutes, 5..1440');
  }
  if (typeof s.alarms.why !== 'string' || s.alarms.why === '') fail('alarms.why must say why these thresholds');
  if ((s.alarms as { subscriptions?: unknown }).subscriptions !== undefined) {
    fail('alarms.subscriptions was split by severity: set alarms.pageSubscriptions and alarms.ticketSubscriptions instead');
  }
  if (s.function.timeoutSeconds > 900) fail('timeoutSeconds must be at most 900');
  const budget = s.function.recordBudgetSeconds;
  if (!(budget >= 1) || s.function.timeoutSeconds < 2 * budget + 5) {
    fail('timeoutSeconds must be at least twice recordBudgetSeconds plus 5 s: a redelivery must be able to wait out a crashed holder\'s lease and still run the record');
  }
  if (esm.maximumRetryAttempts < 2) fail('maximumRetryAttempts must be at least 2: the second retry takes over a claim a crashed invocation left');
  if (!/^[A-Z][A-Za-z0-9]*$/.test(s.stack ?? '')) fail(`stack ${JSON.stringify(s.stack)} must be a PascalCase stack name`);
  if (!/^[a-z][a-z0-9-]*$/.test(s.crate)) fail(`crate ${JSON.stringify(s.crate)} must be a kebab-case crate name`);
  if (!Array.isArray(s.prerequisites) || s.prerequisites.some((k) => typeof k !== 'string' || !/^[a-zA-Z]+$/.test(k))) {
    fail('prerequisites must list CDK context keys (without the fanout: prefix)');
  }
  const env = s.environment;
  if (!env.required.includes('DLQ_URL')) fail('environment.required must list DLQ_URL: every consumer parks into its own DLQ');
  if (s.ledgerKeyPrefix !== s.crate) fail('ledgerKeyPrefix must be the crate name: the consumer writes its keys as <crate>#...');
  if (typeof s.ledgerEffects !== 'boolean') fail('ledgerEffects must say whether the consumer claims its effects in the ledger');
  if (!s.ledger || !Number.isInteger(s.ledger.retentionDays) || s.ledger.retentionDays < 2 || s.ledger.retentionDays > 3650) {
    fail('ledger.retentionDays must be a whole number of days, 2..3650: an entry must outlive the 24 h stream');
  }
  if (typeof s.ledger.why !== 'string' || s.ledger.why === '') fail('ledger.why must say why this retention (its reconcile window and cost)');
  if (!env.required.includes('USERS_TABLE')) fail('environment.required must list USERS_TABLE: every consumer parks a record of any other table');
  if (!env.required.includes('LEDGER_TABLE')) fail('environment.required must list LEDGER_TABLE: every consumer parks a poison record once through the ledger');
  for (const variable of Object.keys(env.fromContext ?? {})) {
    if (!env.required.includes(variable) && !env.optional.includes(variable)) {
      fail(`environment.fromContext sets ${variable}, which is neither required nor optional`);
    }
  }
}

/**
 * The deployment's own choices for synthesis outside a deployment (tests, template linting):
 * alarm subscribers of both kinds and an operator role, so every shape is asserted and linted.
 */
export const EXAMPLE_CONTEXT: Record<string, string> = {
  'fanout:pageSubscriptions': 'oncall@example.com,https://pager.example.com/hooks/fanout',
  'fanout:ticketSubscriptions': 'https://chat.example.com/hooks/fanout',
  'fanout:operatorRoleArn': 'arn:aws:iam::111111111111:role/fanout-operator',
};

/** The context in cdk.json, for synthesis outside the CDK CLI (tests, template linting). */
export function cdkJsonContext(): Record<string, unknown> {
  const file = path.join(__dirname, '..', '..', 'cdk.json');
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { context: Record<string, unknown> }).context;
}
