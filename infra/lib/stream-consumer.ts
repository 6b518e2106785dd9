import * as fs from 'node:fs';
import * as path from 'node:path';
import * as cdk from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { RustFunction } from 'cargo-lambda-cdk';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { AlarmTopics } from './alarm-topics';
import { architecture, buildProfile, kinesisMappingOnStream, localAws, optionalContext } from './deployment';
import { ConsumerSettings } from './settings';
import { ensureRustToolchain } from './toolchain';
import { parameterName, physicalName } from './names';

/** What the account may do with a DLQ key: administer it, never encrypt or decrypt with it. */
const KEY_ADMIN_ACTIONS = [
  'kms:Create*', 'kms:Describe*', 'kms:Enable*', 'kms:List*', 'kms:Put*', 'kms:Update*', 'kms:Revoke*',
  'kms:Disable*', 'kms:Get*', 'kms:Delete*', 'kms:TagResource', 'kms:UntagResource',
  'kms:ScheduleKeyDeletion', 'kms:CancelKeyDeletion', 'kms:RotateKeyOnDemand',
];

/** The workspace the functions build from. */
export const WORKSPACE_ROOT = path.join(__dirname, '..', '..', '..');

/**
 * A consumer's own manifest: cargo-lambda runs in its folder, so cargo resolves the features
 * of that package alone, as `make bench` and `make package` build it. From the workspace
 * root it would unify the features of every member (the tools' default HTTPS client with
 * aws-lc among them) into each function.
 */
export function consumerManifest(crate: string): string {
  const own = path.join(WORKSPACE_ROOT, 'crates', crate, 'Cargo.toml');
  // A consumer registered before its crate exists still synthesizes; bundling it then fails
  // naming the missing binary.
  return fs.existsSync(own) ? own : path.join(WORKSPACE_ROOT, 'Cargo.toml');
}

export interface StreamConsumerProps {
  readonly settings: ConsumerSettings;
  /** Consumer-specific environment, beside DLQ_URL and MAX_CONCURRENCY. */
  readonly environment: Record<string, string>;
  /** Consumer-specific permissions: exact resources only. */
  readonly statements: iam.PolicyStatement[];
  /** Where alarms go (page or ticket), and where they say they are OK again. */
  readonly alarmTopics: AlarmTopics;
}

/** The EMF counters core writes per batch (namespace `fanout`, dimension `Consumer`). */
export const BATCH_COUNTERS = ['Processed', 'Ignored', 'Duplicate', 'RetryableFailed', 'Parked'] as const;

/**
 * The mapping's own event counts (its `MetricsConfig` with `EventCount`, namespace AWS/Lambda,
 * dimension `EventSourceMappingUUID`): what it polled, filtered out, failed to invoke, sent to
 * the on-failure destination and dropped.
 */
export const MAPPING_COUNTERS = [
  'PolledEventCount',
  'FilteredOutEventCount',
  'FailedInvokeEventCount',
  'OnFailureDestinationDeliveredEventCount',
  'DroppedEventCount',
] as const;

/** DurationNearTimeout fires when an invocation took more than this share of the timeout. */
export const DURATION_ALARM_SHARE = 0.8;

/** RecordsRetrying fires after this many 5-minute periods in a row with a record reported for retry. */
export const RETRYING_PERIODS = 3;

/**
 * The mapping's filter patterns: the registry's, as the mapping of the consumer's source reads
 * them. Patterns are written against the DynamoDB change record; on Kinesis that record is the
 * (decoded) `data` of each record, and one Kinesis stream may carry the changes of several
 * tables, so every pattern also asks for `tableName` = the Users table (`usersTable`, a
 * deploy-time value): another table's change never wakes the function. (The function parks one
 * that reaches it all the same.) A DynamoDB stream is the table's own. `usersTable` undefined
 * leaves the table out (a local AWS, whose Kinesis records name none).
 */
export function filterPatterns(settings: ConsumerSettings, usersTable: string | undefined): Record<string, unknown>[] {
  const filters = settings.eventSourceMapping.filters;
  if (settings.source !== 'kinesis') return filters;
  if (usersTable === undefined) return filters.map((pattern) => ({ data: pattern }));
  return (filters.length > 0 ? filters : [{}]).map((pattern) => ({ data: { ...pattern, tableName: [usersTable] } }));
}

/**
 * What every consumer shares: the Rust function, its own DLQ, the event source mapping on its
 * source (the Users DynamoDB stream, or the Users Kinesis stream through an enhanced fan-out
 * consumer of its own) with every knob from its registry entry, least-privilege IAM and the
 * alarms. A consumer stack states only what differs (environment and permissions).
 */
export class StreamConsumer extends Construct {
  readonly function: lambda.IFunction;
  readonly dlq: sqs.Queue;
  readonly role: iam.Role;
  readonly mapping: lambda.EventSourceMapping;
  readonly alarms: cloudwatch.Alarm[];
  readonly dlqKey: kms.Key;
  readonly logGroup: logs.LogGroup;
  /** Where the mapping puts a batch it gives up on, whole (`onFailure.destination` bucket). */
  readonly onFailureBucket?: s3.Bucket;
  readonly dashboard: cloudwatch.Dashboard;
  /** The enhanced fan-out consumer the mapping reads through (Kinesis source, on AWS). */
  readonly streamConsumer?: kinesis.CfnStreamConsumer;

  constructor(scope: Construct, id: string, props: StreamConsumerProps) {
    super(scope, id);
    const { settings } = props;
    const esm = settings.eventSourceMapping;

    // Read at deploy time from SSM: no cross-stack export, so this stack deploys alone.
    const onKinesis = settings.source === 'kinesis';
    const streamArn = ssm.StringParameter.valueForStringParameter(
      this,
      parameterName(this, onKinesis ? 'usersKinesisStreamArn' : 'usersStreamArn'),
    );
    if (onKinesis && !kinesisMappingOnStream(this)) {
      // Its own 2 MB/s per shard, pushed over HTTP/2: no other reader of the stream slows it.
      this.streamConsumer = new kinesis.CfnStreamConsumer(this, 'EnhancedFanOut', {
        streamArn,
        consumerName: physicalName(this, settings.crate),
      });
    }
    const mappingSourceArn = this.streamConsumer?.attrConsumerArn ?? streamArn;

    // Parked records hold whole user images: encrypted with a key of their own, which only
    // this function (parking, and the mapping's OnFailure delivery under its role) and the
    // operator role may use. The account may administer the key but not use it.
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `${settings.crate}: its log group, the Users stream, its DLQ and its own target only`,
    });
    const operatorRoleArn = optionalContext(this, 'operatorRoleArn');
    const keyPolicy = new iam.PolicyDocument({
      statements: [
        new iam.PolicyStatement({
          sid: 'AccountAdministersButCannotUse',
          principals: [new iam.AccountRootPrincipal()],
          actions: KEY_ADMIN_ACTIONS,
          resources: ['*'],
        }),
        new iam.PolicyStatement({
          sid: 'FunctionParksAndMappingDeliversOnFailure',
          principals: [new iam.ArnPrincipal(this.role.roleArn)],
          actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
          resources: ['*'],
        }),
        ...(operatorRoleArn
          ? [
              new iam.PolicyStatement({
                sid: 'OperatorReadsForRedrive',
                principals: [new iam.ArnPrincipal(operatorRoleArn)],
                actions: ['kms:Decrypt'],
                resources: ['*'],
              }),
            ]
          : []),
      ],
    });
    this.dlqKey = new kms.Key(this, 'DlqKey', {
      enableKeyRotation: true,
      description: `fanout ${settings.crate}: its DLQ (parked records hold personal data)`,
      policy: keyPolicy,
      removalPolicy: cdk.RemovalPolicy.RETAIN,
    });
    this.dlq = new sqs.Queue(this, 'Dlq', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: this.dlqKey,
      // How long SQS reuses a data key before asking KMS again: fewer KMS requests.
      dataKeyReuse: cdk.Duration.minutes(5),
      enforceSSL: true,
      retentionPeriod: cdk.Duration.days(14),
    });

    if (settings.onFailure.destination === 'bucket') {
      // The whole batch of every change given up on: personal data, under the consumer's own
      // key, kept only as long as it is worth redriving.
      this.onFailureBucket = new s3.Bucket(this, 'OnFailureBucket', {
        encryption: s3.BucketEncryption.KMS,
        encryptionKey: this.dlqKey,
        bucketKeyEnabled: true,
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
        enforceSSL: true,
        lifecycleRules: [{ id: 'ExpireWhenNoLongerWorthRedriving', expiration: cdk.Duration.days(settings.onFailure.bucketRetentionDays ?? 1) }],
        removalPolicy: cdk.RemovalPolicy.RETAIN,
      });
      NagSuppressions.addResourceSuppressions(this.onFailureBucket, [
        {
          id: 'AwsSolutions-S1',
          reason: 'Only the mapping (under the function role) writes and only fanout-ops reads this bucket; CloudTrail data events record that access where the account enables them, without a second bucket of access logs per consumer.',
        },
      ]);
    }

    const logGroup = (this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: settings.logs.retentionDays as logs.RetentionDays,
      removalPolicy: cdk.RemovalPolicy.RETAIN,
    }));

    const statements = [
      new iam.PolicyStatement({
        sid: 'OwnLogGroup',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }),
      ...this.sourceStatements(onKinesis, streamArn),
      new iam.PolicyStatement({
        sid: 'ParkInOwnDlq',
        actions: ['sqs:SendMessage', 'sqs:GetQueueAttributes'],
        resources: [this.dlq.queueArn],
      }),
      // The mapping writes the on-failure object under the function's role (AWS asks for both).
      ...(this.onFailureBucket
        ? [
            new iam.PolicyStatement({
              sid: 'OnFailureObjectsToOwnBucket',
              actions: ['s3:PutObject'],
              resources: [this.onFailureBucket.arnForObjects('aws/lambda/*')],
            }),
            new iam.PolicyStatement({
              sid: 'OnFailureBucketListedByTheMapping',
              actions: ['s3:ListBucket'],
              resources: [this.onFailureBucket.bucketArn],
            }),
          ]
        : []),
      ...props.statements,
    ];
    const policy = new iam.Policy(this, 'Policy', { statements });
    this.role.attachInlinePolicy(policy);

    const arch = architecture(this);
    // Only a stack the CLI is about to deploy or synthesize for real needs the build.
    if (cdk.Stack.of(this).bundlingRequired) ensureRustToolchain(arch);
    const fn = new RustFunction(this, 'Function', {
      manifestPath: consumerManifest(settings.crate),
      binaryName: settings.crate,
      architecture: arch,
      bundling: { profile: buildProfile(this), forcedDockerBundling: false },
      runtime: 'provided.al2023',
      memorySize: settings.function.memoryMiB,
      timeout: cdk.Duration.seconds(settings.function.timeoutSeconds),
      reservedConcurrentExecutions: settings.function.reservedConcurrency,
      role: this.role,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      // Lambda passes it on as AWS_LAMBDA_LOG_LEVEL, which the function's logging honours
      // unless RUST_LOG says otherwise.
      applicationLogLevelV2: lambda.ApplicationLogLevel[settings.logs.level],
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
      description: `fanout ${settings.crate}`,
      environment: {
        DLQ_URL: this.dlq.queueUrl,
        MAX_CONCURRENCY: String(settings.function.maxConcurrency),
        RECORD_BUDGET_SECONDS: String(settings.function.recordBudgetSeconds),
        LEDGER_RETENTION_HOURS: String(settings.ledger.retentionDays * 24),
        ...props.environment,
      },
    });
    fn.node.addDependency(policy);
    this.function = fn;

    this.mapping = new lambda.EventSourceMapping(this, 'StreamMapping', {
      target: fn,
      eventSourceArn: mappingSourceArn,
      startingPosition: lambda.StartingPosition[esm.startingPosition],
      startingPositionTimestamp: esm.startingPositionTimestamp,
      batchSize: esm.batchSize,
      maxBatchingWindow: cdk.Duration.seconds(esm.maxBatchingWindowSeconds),
      parallelizationFactor: esm.parallelizationFactor,
      bisectBatchOnError: esm.bisectBatchOnFunctionError,
      retryAttempts: esm.maximumRetryAttempts,
      maxRecordAge: cdk.Duration.seconds(esm.maximumRecordAgeSeconds),
      reportBatchItemFailures: esm.reportBatchItemFailures,
      // DroppedEventCount and the other counts exist only with the mapping's metrics on.
      metricsConfig: { metrics: [lambda.MetricType.EVENT_COUNT] },
      // The mapping delivers OnFailure records under the function's role, which ParkInOwnDlq
      // (or OnFailureObjectsToOwnBucket) and the key policy already allow; SqsDlq and
      // S3OnFailureDestination would add second, wider grants.
      onFailure: { bind: () => ({ destination: this.onFailureBucket?.bucketArn ?? this.dlq.queueArn }) },
      filters: (() => {
        // A local AWS's Kinesis records carry no tableName (docs/deploy.md "What the local AWS does not emulate"): there the
        // function's own check alone keeps other tables' changes out.
        const usersTable = localAws(this) ? undefined : ssm.StringParameter.valueForStringParameter(this, parameterName(this, 'usersTableName'));
        const patterns = filterPatterns(settings, usersTable);
        return patterns.length > 0 ? patterns.map((pattern) => ({ pattern: cdk.Stack.of(this).toJsonString(pattern) })) : undefined;
      })(),
    });
    this.mapping.node.addDependency(policy);

    this.alarms = this.createAlarms(settings, fn, props.alarmTopics);
    this.dashboard = this.createDashboard(settings, fn);

    NagSuppressions.addResourceSuppressions(
      policy,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'Log streams are created by Lambda with generated names inside this one log group; dynamodb:ListStreams supports no resource-level permission, so it takes "*"; search-warm writes documents of one index only; the mapping names its on-failure objects itself (aws/lambda/<mapping UUID>/...), in the consumer\'s own bucket only.',
          // Each form matches whether the stack is env-agnostic or has a concrete account and
          // region: a concrete region changes the resolved string, never these shapes.
          appliesTo: [
            { regex: '/^Resource::<.*Logs.*\\.Arn>:\\*$/g' },
            'Resource::*',
            { regex: '/^Resource::arn:<AWS::Partition>:es:(<AWS::Region>|[a-z0-9-]+):(<AWS::AccountId>|[0-9]+):domain/.*/_doc/\\*$/g' },
            { regex: '/^Resource::<ConsumerOnFailureBucket[A-Za-z0-9]+\\.Arn>\\/aws\\/lambda\\/\\*$/g' },
          ],
        },
      ],
      true,
    );
    NagSuppressions.addResourceSuppressions(this.dlq, [
      { id: 'AwsSolutions-SQS3', reason: 'This queue is itself the dead-letter queue of the consumer (parked records and the OnFailure destination).' },
    ]);
  }

  /**
   * What the mapping needs to read its source, under the function's role: the DynamoDB stream;
   * or the Kinesis stream's shards and, on AWS, subscribing through its own consumer only.
   * The Kinesis stream is encrypted with the AWS managed key, whose policy lets this account's
   * principals use it through Kinesis: no key statement here.
   */
  private sourceStatements(onKinesis: boolean, streamArn: string): iam.PolicyStatement[] {
    if (!onKinesis) {
      return [
        new iam.PolicyStatement({
          sid: 'ReadUsersStreamForTheMapping',
          actions: ['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator'],
          resources: [streamArn],
        }),
        new iam.PolicyStatement({
          // ListStreams supports no resource-level permission (the service authorization
          // reference lists no resource type for it): a narrower Resource matches nothing.
          sid: 'ListStreamsSupportsNoResource',
          actions: ['dynamodb:ListStreams'],
          resources: ['*'],
        }),
      ];
    }
    const statements = [
      new iam.PolicyStatement({
        sid: 'ReadUsersKinesisStreamForTheMapping',
        actions: ['kinesis:DescribeStream', 'kinesis:DescribeStreamSummary', 'kinesis:GetRecords', 'kinesis:GetShardIterator', 'kinesis:ListShards'],
        resources: [streamArn],
      }),
    ];
    if (this.streamConsumer) {
      statements.push(
        new iam.PolicyStatement({
          sid: 'SubscribeThroughOwnConsumerOnly',
          actions: ['kinesis:SubscribeToShard', 'kinesis:DescribeStreamConsumer'],
          resources: [this.streamConsumer.attrConsumerArn],
        }),
      );
    }
    return statements;
  }

  /**
   * The alarms, each with its severity, missing-data rule and why. Loss and a stopped consumer
   * page (DroppedEvents, Stopped, DlqOldestMessageAge); the rest open a ticket.
   */
  private createAlarms(settings: ConsumerSettings, fn: lambda.IFunction, topics: AlarmTopics): cloudwatch.Alarm[] {
    const { alarms } = settings;
    const minutes = (n: number) => cdk.Duration.minutes(n);
    const alarm = (id: string, props: Parameters<AlarmTopics['alarm']>[2]) => topics.alarm(this, id, props);
    const counter = (name: (typeof BATCH_COUNTERS)[number]) =>
      new cloudwatch.Metric({ namespace: 'fanout', metricName: name, dimensionsMap: { Consumer: settings.crate }, statistic: 'Sum', period: minutes(5) });
    const timeoutMs = settings.function.timeoutSeconds * 1000;
    const created = [
      // Missing: SQS stops reporting an idle, empty queue; nothing is waiting.
      alarm('DlqNotEmpty', {
        metric: this.dlq.metricApproximateNumberOfMessagesVisible({ period: minutes(1), statistic: 'Maximum' }),
        threshold: 0,
        severity: 'ticket',
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        description: 'records are in the DLQ (parked permanent failures, or a batch the mapping gave up on).',
      }),
      // Missing: as above, an idle queue holds no message to age.
      alarm('DlqOldestMessageAge', {
        metric: this.dlq.metricApproximateAgeOfOldestMessage({ period: minutes(5), statistic: 'Maximum' }),
        threshold: alarms.dlqOldestMessageMaxSeconds,
        severity: 'page',
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        description: `a DLQ message is older than ${alarms.dlqOldestMessageMaxSeconds} s; an OnFailure range must be redriven before the stream trims it (24 h after the write).`,
      }),
      // Missing: no invocation reports no iterator age; Stopped watches for that.
      alarm('IteratorAgeHigh', {
        metric: fn.metric('IteratorAge', { period: minutes(5), statistic: 'Maximum' }),
        threshold: alarms.iteratorAgeMaxSeconds * 1000,
        severity: 'ticket',
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        description: `the ${settings.source === 'kinesis' ? 'Users Kinesis stream' : 'Users DynamoDB stream'} is more than ${alarms.iteratorAgeMaxSeconds} s behind; records expire at the end of its retention (24 h on the DynamoDB stream).`,
      }),
      // Missing: no invocation, no error; Stopped watches for that.
      alarm('FunctionErrors', {
        metric: fn.metricErrors({ period: minutes(5), statistic: 'Sum' }),
        threshold: 0,
        severity: 'ticket',
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        description: 'invocations failed as a whole (crash, timeout, or a batch that could not be reported).',
      }),
      // Missing: no invocation attempted, none throttled; Stopped watches for that.
      alarm('Throttles', {
        metric: fn.metricThrottles({ period: minutes(5), statistic: 'Sum' }),
        threshold: 0,
        severity: 'ticket',
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        description: 'invocations were throttled (reserved concurrency too low, or set to zero).',
      }),
      // Missing: the mapping reports a count only while it has events; none dropped.
      alarm('DroppedEvents', {
        metric: this.mappingMetric('DroppedEventCount', minutes(1)),
        threshold: 0,
        severity: 'page',
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        description: 'Lambda dropped records it gave up on because the OnFailure destination refused them (queue deleted, its key disabled, a policy wrong): those changes are gone from this consumer. Fix the destination, then reconcile.',
      }),
      // Missing: no batch, no failure. Three 5-minute periods in a row: one bad minute (a
      // throttled target, a redeploy) is retried away; records failing for 15 minutes inside
      // successful invocations never raise Errors.
      alarm('RecordsRetrying', {
        metric: counter('RetryableFailed'),
        threshold: 0,
        evaluationPeriods: RETRYING_PERIODS,
        severity: 'ticket',
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        description: `records were reported for retry in each of the last ${RETRYING_PERIODS} five-minute periods (a target failing, or a record budget the invocation cannot hold: see the function's ERROR lines).`,
      }),
      // Missing: no batch, nothing parked.
      alarm('RecordsParked', {
        metric: counter('Parked'),
        threshold: 0,
        severity: 'ticket',
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        description: 'records were parked as permanent failures (undecodable, another table\'s, refused by the target): each waits in the DLQ with its reason.',
      }),
      // Missing: no invocation, nothing slow. 80 %: a batch that long is one slow target away
      // from its timeout, where the whole batch fails and is retried.
      alarm('DurationNearTimeout', {
        metric: fn.metricDuration({ period: minutes(5), statistic: 'Maximum' }),
        threshold: timeoutMs * DURATION_ALARM_SHARE,
        severity: 'ticket',
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        description: `an invocation took more than ${DURATION_ALARM_SHARE * 100} % of the ${settings.function.timeoutSeconds} s timeout (a slow target, or batches too large for it).`,
      }),
    ];
    if (this.onFailureBucket) {
      // Missing: nothing given up on. The bucket has no cheap object count per minute; the
      // mapping's own count of deliveries is the signal.
      created.push(
        alarm('OnFailureObjects', {
          metric: this.mappingMetric('OnFailureDestinationDeliveredEventCount', minutes(5)),
          threshold: 0,
          severity: 'ticket',
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
          description: `the mapping gave up on records and put them, whole, in its on-failure bucket (kept ${settings.onFailure.bucketRetentionDays} days): fanout-ops redrive sends them again.`,
        }),
      );
    }
    if (!localAws(this)) {
      // Users writes without a single invocation: a disabled mapping or a function throttled
      // to zero, which every other alarm reads as silence. FILL makes both series whole, so
      // missing data never decides it.
      const period = minutes(alarms.stoppedAfterMinutes);
      const usersTable = ssm.StringParameter.valueForStringParameter(this, parameterName(this, 'usersTableName'));
      const stopped = new cloudwatch.MathExpression({
        expression: 'IF(FILL(writes, 0) > 0 AND FILL(invocations, 0) == 0, 1, 0)',
        usingMetrics: {
          writes: new cloudwatch.Metric({
            namespace: 'AWS/DynamoDB',
            metricName: 'ConsumedWriteCapacityUnits',
            dimensionsMap: { TableName: usersTable },
            statistic: 'Sum',
            period,
          }),
          invocations: fn.metricInvocations({ statistic: 'Sum', period }),
        },
        period,
        label: 'writes without invocations',
      });
      created.push(
        alarm('Stopped', {
          metric: stopped,
          threshold: 0,
          severity: 'page',
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
          description: `the Users table took writes for ${alarms.stoppedAfterMinutes} min and the function was not invoked once (mapping disabled, or throttled to zero).`,
        }),
      );
    }
    return created;
  }

  /** One of the mapping's own event counts (`MAPPING_COUNTERS`), summed over `period`. */
  private mappingMetric(name: (typeof MAPPING_COUNTERS)[number], period: cdk.Duration): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: 'AWS/Lambda',
      metricName: name,
      dimensionsMap: { EventSourceMappingUUID: this.mapping.eventSourceMappingId },
      statistic: 'Sum',
      period,
    });
  }

  /** One dashboard per consumer: the stream, the function, the DLQ and core's counters. */
  private createDashboard(settings: ConsumerSettings, fn: lambda.IFunction): cloudwatch.Dashboard {
    const period = cdk.Duration.minutes(5);
    const counter = (name: string) =>
      new cloudwatch.Metric({ namespace: 'fanout', metricName: name, dimensionsMap: { Consumer: settings.crate }, statistic: 'Sum', period });
    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: physicalName(this, settings.crate),
      defaultInterval: cdk.Duration.hours(6),
    });
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({ title: 'Iterator age (ms)', left: [fn.metric('IteratorAge', { statistic: 'Maximum', period })] }),
      new cloudwatch.GraphWidget({
        title: 'Invocations, errors, throttles',
        left: [fn.metricInvocations({ period }), fn.metricErrors({ period }), fn.metricThrottles({ period })],
      }),
      new cloudwatch.GraphWidget({
        title: 'DLQ depth and oldest message (s)',
        left: [this.dlq.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period })],
        right: [this.dlq.metricApproximateAgeOfOldestMessage({ statistic: 'Maximum', period })],
      }),
      new cloudwatch.GraphWidget({ title: 'Records per batch outcome', left: BATCH_COUNTERS.map(counter), stacked: true }),
      new cloudwatch.GraphWidget({
        title: 'The mapping: polled, filtered out, failed to invoke, sent on failure, dropped',
        left: MAPPING_COUNTERS.map((name) => this.mappingMetric(name, period)),
      }),
    );
    return dashboard;
  }
}
