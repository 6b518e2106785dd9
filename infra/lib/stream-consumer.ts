import * as path from 'node:path';
import * as cdk from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { RustFunction } from 'cargo-lambda-cdk';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { architecture, buildProfile } from './deployment';
import { ConsumerSettings } from './settings';
import { ensureRustToolchain } from './toolchain';
import { PARAMETERS } from './tables-stack';

/** The workspace manifest the functions build from. */
export const WORKSPACE_MANIFEST = path.join(__dirname, '..', '..', '..', 'Cargo.toml');

export interface StreamConsumerProps {
  readonly settings: ConsumerSettings;
  /** Consumer-specific environment, beside DLQ_URL and MAX_CONCURRENCY. */
  readonly environment: Record<string, string>;
  /** Consumer-specific permissions: exact resources only. */
  readonly statements: iam.PolicyStatement[];
  /** Where alarms go. */
  readonly alarmTopic: sns.ITopic;
}

/**
 * What every consumer shares: the Rust function, its own DLQ, the DynamoDB Streams event
 * source mapping with every knob from its registry entry, least-privilege IAM and the alarms.
 * A consumer stack states only what differs (environment and permissions).
 */
export class StreamConsumer extends Construct {
  readonly function: lambda.IFunction;
  readonly dlq: sqs.Queue;
  readonly role: iam.Role;
  readonly mapping: lambda.EventSourceMapping;
  readonly alarms: cloudwatch.Alarm[];

  constructor(scope: Construct, id: string, props: StreamConsumerProps) {
    super(scope, id);
    const { settings } = props;
    const esm = settings.eventSourceMapping;

    // Read at deploy time from SSM: no cross-stack export, so this stack deploys alone.
    const streamArn = ssm.StringParameter.valueForStringParameter(this, PARAMETERS.usersStreamArn);

    // Parked records (full record + error) and the ESM's OnFailure batch metadata.
    this.dlq = new sqs.Queue(this, 'Dlq', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: cdk.Duration.days(14),
    });

    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: cdk.RemovalPolicy.RETAIN,
    });

    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `${settings.crate}: its log group, the Users stream, its DLQ and its own target only`,
    });
    const statements = [
      new iam.PolicyStatement({
        sid: 'OwnLogGroup',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }),
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
      new iam.PolicyStatement({
        sid: 'ParkInOwnDlq',
        actions: ['sqs:SendMessage', 'sqs:GetQueueAttributes'],
        resources: [this.dlq.queueArn],
      }),
      ...props.statements,
    ];
    const policy = new iam.Policy(this, 'Policy', { statements });
    this.role.attachInlinePolicy(policy);

    const arch = architecture(this);
    // Only a stack the CLI is about to deploy or synthesize for real needs the build.
    if (cdk.Stack.of(this).bundlingRequired) ensureRustToolchain(arch);
    const fn = new RustFunction(this, 'Function', {
      manifestPath: WORKSPACE_MANIFEST,
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
      applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
      description: `fanout ${settings.crate}`,
      environment: {
        DLQ_URL: this.dlq.queueUrl,
        MAX_CONCURRENCY: String(settings.function.maxConcurrency),
        RECORD_BUDGET_SECONDS: String(settings.function.recordBudgetSeconds),
        ...props.environment,
      },
    });
    fn.node.addDependency(policy);
    this.function = fn;

    this.mapping = new lambda.EventSourceMapping(this, 'StreamMapping', {
      target: fn,
      eventSourceArn: streamArn,
      startingPosition: lambda.StartingPosition[esm.startingPosition],
      batchSize: esm.batchSize,
      maxBatchingWindow: cdk.Duration.seconds(esm.maxBatchingWindowSeconds),
      parallelizationFactor: esm.parallelizationFactor,
      bisectBatchOnError: esm.bisectBatchOnFunctionError,
      retryAttempts: esm.maximumRetryAttempts,
      maxRecordAge: cdk.Duration.seconds(esm.maximumRecordAgeSeconds),
      reportBatchItemFailures: esm.reportBatchItemFailures,
      onFailure: new SqsDlq(this.dlq),
      filters: esm.filters.length > 0 ? esm.filters.map((pattern) => ({ pattern: JSON.stringify(pattern) })) : undefined,
    });
    this.mapping.node.addDependency(policy);

    const action = new cwActions.SnsAction(props.alarmTopic);
    const alarm = (alarmId: string, metric: cloudwatch.IMetric, threshold: number, description: string) => {
      const created = new cloudwatch.Alarm(this, alarmId, {
        metric,
        threshold,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
      created.addAlarmAction(action);
      return created;
    };
    this.alarms = [
      alarm(
        'DlqNotEmpty',
        this.dlq.metricApproximateNumberOfMessagesVisible({ period: cdk.Duration.minutes(1), statistic: 'Maximum' }),
        0,
        `${settings.crate}: records are parked in the DLQ (permanent failures, or a batch the mapping gave up on). See README "When an alarm fires".`,
      ),
      alarm(
        'IteratorAgeHigh',
        fn.metric('IteratorAge', { period: cdk.Duration.minutes(5), statistic: 'Maximum' }),
        settings.alarms.iteratorAgeMaxSeconds * 1000,
        `${settings.crate}: the stream is ${settings.alarms.iteratorAgeMaxSeconds} s behind; records expire after 24 h.`,
      ),
      alarm(
        'FunctionErrors',
        fn.metricErrors({ period: cdk.Duration.minutes(5), statistic: 'Sum' }),
        0,
        `${settings.crate}: invocations failed as a whole (crash, timeout, or a batch that could not be reported).`,
      ),
    ];

    NagSuppressions.addResourceSuppressions(
      policy,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'Log streams are created by Lambda with generated names inside this one log group; dynamodb:ListStreams supports no resource-level permission, so it takes "*"; search-warm writes documents of one index only.',
          // Each form matches whether the stack is env-agnostic or has a concrete account and
          // region: a concrete region changes the resolved string, never these shapes.
          appliesTo: [
            { regex: '/^Resource::<.*Logs.*\\.Arn>:\\*$/g' },
            'Resource::*',
            { regex: '/^Resource::arn:<AWS::Partition>:es:(<AWS::Region>|[a-z0-9-]+):(<AWS::AccountId>|[0-9]+):domain/.*/_doc/\\*$/g' },
          ],
        },
      ],
      true,
    );
    NagSuppressions.addResourceSuppressions(this.dlq, [
      { id: 'AwsSolutions-SQS3', reason: 'This queue is itself the dead-letter queue of the consumer (parked records and the OnFailure destination).' },
    ]);
  }
}
