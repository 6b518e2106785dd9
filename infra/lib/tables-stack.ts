import * as cdk from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { AlarmTopics } from './alarm-topics';
import { localAws, optionalContext } from './deployment';
import { ParameterKey, parameterArn, parameterName } from './names';
import { OperatorPolicy } from './operator-policy';


/** What the Users stream carries; consumers check it against what they need at cold start. */
export const USERS_STREAM_VIEW = dynamodb.StreamViewType.NEW_AND_OLD_IMAGES;

/** How long the Users Kinesis stream keeps records unless `fanout:usersKinesisRetentionHours` says. */
export const DEFAULT_KINESIS_RETENTION_HOURS = 168;

/**
 * `fanout:usersKinesisRetentionHours`: how long the Users Kinesis stream keeps records, 24..8760.
 * @default 168 (a week to redrive or rebuild; beyond 24 h AWS charges extended retention).
 */
export function kinesisRetentionHours(scope: Construct): number {
  const given = optionalContext(scope, 'usersKinesisRetentionHours');
  const hours = given === undefined ? DEFAULT_KINESIS_RETENTION_HOURS : Number(given);
  if (!Number.isInteger(hours) || hours < 24 || hours > 8760) {
    throw new Error(`CDK context fanout:usersKinesisRetentionHours must be a whole number of hours, 24..8760, not ${JSON.stringify(given)}`);
  }
  return hours;
}

/** An existing Users table fanout attaches to instead of creating one. */
export interface ExistingUsersTable {
  readonly tableName: string;
  /** Its DynamoDB stream's ARN (`Table.LatestStreamArn`). */
  readonly streamArn: string;
}

/**
 * `fanout:usersTableName` with `fanout:usersStreamArn`: attach to the API team's own Users
 * table (this account and region) instead of creating one. fanout never modifies or deletes a
 * table it did not create: the table is only referenced, and what the consumers need of it (a
 * NEW_AND_OLD_IMAGES stream, the key `userId` (S), the Kinesis streaming destination when a
 * consumer reads Kinesis) is checked by `fanout-ops preflight`, which names the command that
 * fixes it. @default none: FanoutTables creates Users (the demo, e2e, first-time users).
 */
export function existingUsersTable(scope: Construct): ExistingUsersTable | undefined {
  const tableName = optionalContext(scope, 'usersTableName');
  const streamArn = optionalContext(scope, 'usersStreamArn');
  if (tableName === undefined && streamArn === undefined) return undefined;
  if (tableName === undefined || streamArn === undefined) {
    throw new Error(
      'CDK context fanout:usersTableName and fanout:usersStreamArn go together: the table to attach to and its stream ' +
        '(aws dynamodb describe-table --table-name <table> --query Table.LatestStreamArn)',
    );
  }
  if (!/^[a-zA-Z0-9_.-]{3,255}$/.test(tableName)) {
    throw new Error(`CDK context fanout:usersTableName: ${JSON.stringify(tableName)} is not a DynamoDB table name`);
  }
  const match = /^arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table\/([a-zA-Z0-9_.-]+)\/stream\/[^/]+$/.exec(streamArn);
  if (!match) {
    throw new Error(`CDK context fanout:usersStreamArn: ${JSON.stringify(streamArn)} is not a DynamoDB stream ARN (arn:aws:dynamodb:<region>:<account>:table/<table>/stream/<label>)`);
  }
  if (match[1] !== tableName) {
    throw new Error(`CDK context fanout:usersStreamArn is a stream of table ${match[1]}, not of fanout:usersTableName ${tableName}`);
  }
  return { tableName, streamArn };
}

export interface TablesStackProps extends cdk.StackProps {
  /**
   * Whether Users also streams its changes to a Kinesis data stream (its Kinesis streaming
   * destination): on when a consumer of the registry reads `source: kinesis`. @default false
   */
  readonly kinesisDestination?: boolean;
}

export class TablesStack extends cdk.Stack {
  /** Users: created here, or the existing table `fanout:usersTableName` names (referenced only). */
  readonly users: dynamodb.ITable;
  readonly ledger: dynamodb.Table;
  readonly audit: dynamodb.Table;
  /** The Users table's Kinesis streaming destination, when a consumer reads it. */
  readonly usersChanges?: kinesis.Stream;
  /** Where the tables' alarms go (`fanout:pageSubscriptions`, `fanout:ticketSubscriptions`). */
  readonly alarmTopics: AlarmTopics;
  readonly alarms: cloudwatch.Alarm[];
  /** What fanout-ops may do to the tables, streams and parameters. */
  readonly operator: OperatorPolicy;

  constructor(scope: Construct, id: string, props: TablesStackProps = {}) {
    super(scope, id, props);

    if (props.kinesisDestination) {
      // On-demand: capacity follows the table's write rate, no shard count to size. The AWS
      // managed key (alias/aws/kinesis) encrypts it: readers in this account need no key
      // permission of their own, and cdk-nag (KDS3) asks for it unless a CMK is required.
      // Destroyed with the stack: it only mirrors Users, whose stream and table are kept.
      this.usersChanges = new kinesis.Stream(this, 'UsersChanges', {
        streamMode: kinesis.StreamMode.ON_DEMAND,
        encryption: kinesis.StreamEncryption.MANAGED,
        retentionPeriod: cdk.Duration.hours(kinesisRetentionHours(this)),
      });
    }

    const existing = existingUsersTable(this);
    this.users = existing
      ? dynamodb.Table.fromTableAttributes(this, 'Users', { tableName: existing.tableName, tableStreamArn: existing.streamArn })
      : new dynamodb.Table(this, 'Users', {
          partitionKey: { name: 'userId', type: dynamodb.AttributeType.STRING },
          billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
          stream: USERS_STREAM_VIEW,
          // Microseconds: core orders a key's Kinesis records by creation time first.
          ...(this.usersChanges
            ? { kinesisStream: this.usersChanges, kinesisPrecisionTimestamp: dynamodb.ApproximateCreationDateTimePrecision.MICROSECOND }
            : {}),
          pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
          removalPolicy: cdk.RemovalPolicy.RETAIN,
        });

    this.ledger = new dynamodb.Table(this, 'EffectLedger', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      // TTL only tidies up: the claim condition checks expiresAt itself.
      timeToLiveAttribute: 'expiresAt',
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: cdk.RemovalPolicy.RETAIN,
    });

    this.audit = new dynamodb.Table(this, 'UserAudit', {
      partitionKey: { name: 'userId', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'auditId', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: cdk.RemovalPolicy.RETAIN,
    });

    // Where consumer stacks read what they need, at deploy time: no CloudFormation export
    // between stacks, so each consumer team redeploys alone.
    const publish = (id: string, key: ParameterKey, value: string) =>
      new ssm.StringParameter(this, id, { parameterName: parameterName(this, key), stringValue: value });
    publish('UsersTableNameParam', 'usersTableName', this.users.tableName);
    publish('UsersStreamArnParam', 'usersStreamArn', this.users.tableStreamArn ?? '');
    publish('UsersStreamViewTypeParam', 'usersStreamViewType', USERS_STREAM_VIEW);
    if (this.usersChanges) {
      publish('UsersKinesisStreamArnParam', 'usersKinesisStreamArn', this.usersChanges.streamArn);
      new cdk.CfnOutput(this, 'UsersKinesisStreamArn', { value: this.usersChanges.streamArn });
    }
    publish('LedgerTableNameParam', 'ledgerTableName', this.ledger.tableName);
    publish('AuditTableNameParam', 'auditTableName', this.audit.tableName);
    new cdk.CfnOutput(this, 'UsersTableName', { value: this.users.tableName });
    new cdk.CfnOutput(this, 'UsersStreamArn', { value: this.users.tableStreamArn ?? '' });
    new cdk.CfnOutput(this, 'LedgerTableName', { value: this.ledger.tableName });
    new cdk.CfnOutput(this, 'AuditTableName', { value: this.audit.tableName });

    this.alarmTopics = new AlarmTopics(this, 'Alarms', { owner: 'FanoutTables' });
    this.alarmTopics.addOutputs(this);
    this.alarms = this.createAlarms();
    this.operator = this.createOperatorPolicy();
  }

  /** fanout-ops on the tables: their parameters, Users' items and streams. */
  private createOperatorPolicy(): OperatorPolicy {
    const qualifier = this.node.tryGetContext('@aws-cdk/core:bootstrapQualifier') ?? 'hnb659fds';
    const statements = [
      new iam.PolicyStatement({
        sid: 'ParametersOfThisDeployment',
        actions: ['ssm:GetParameter'],
        resources: [
          parameterArn(this, 'tables/*'),
          parameterArn(this, 'consumers/*'),
          this.formatArn({ service: 'ssm', resource: 'parameter', resourceName: `cdk-bootstrap/${qualifier}/version` }),
        ],
      }),
      new iam.PolicyStatement({
        sid: 'RegisteredConsumersOfThisDeployment',
        actions: ['ssm:GetParametersByPath'],
        resources: [parameterArn(this, 'consumers')],
      }),
      new iam.PolicyStatement({
        sid: 'UsersItemsAndStreamsDescription',
        actions: ['dynamodb:DescribeTable', 'dynamodb:Scan', 'dynamodb:GetItem', 'dynamodb:DescribeKinesisStreamingDestination'],
        resources: [this.users.tableArn],
      }),
      new iam.PolicyStatement({
        sid: 'UsersStreamRangesReadAgain',
        actions: ['dynamodb:GetShardIterator', 'dynamodb:GetRecords'],
        resources: [this.users.tableStreamArn ?? this.users.tableArn],
      }),
      ...(this.usersChanges
        ? [
            new iam.PolicyStatement({
              sid: 'UsersKinesisRangesReadAgain',
              actions: ['kinesis:GetShardIterator', 'kinesis:GetRecords'],
              resources: [this.usersChanges.streamArn],
            }),
          ]
        : []),
    ];
    return new OperatorPolicy(this, 'Operator', {
      part: 'tables',
      statements,
      wildcards: [
        {
          appliesTo: { regex: '/^Resource::arn:<AWS::Partition>:ssm:(<AWS::Region>|[a-z0-9-]+):(<AWS::AccountId>|[0-9]+):parameter/fanout/([a-z0-9-]+/)?(tables|consumers)/\\*$/g' },
          reason: 'The parameters this deployment (and stage) publishes, under its own prefix; their names follow the registry, so a new consumer needs no policy change.',
        },
      ],
    });
  }

  /**
   * What can fail between a write to Users and the consumers, outside any consumer's own
   * alarms: DynamoDB failing or throttling the Kinesis replication (a change a Kinesis consumer
   * never sees), and the ledger and audit tables refusing writes. Replication loss pages; the
   * rest opens a ticket. The Metrics Insights ones (every `Operation` / `DelegatedOperation` of
   * a table at once) are AWS-only: the local AWS refuses them (docs/deploy.md "What the local AWS does not emulate").
   */
  private createAlarms(): cloudwatch.Alarm[] {
    const period = cdk.Duration.minutes(5);
    const missingIsQuiet = cloudwatch.TreatMissingData.NOT_BREACHING;
    // Every series of `metric` for `table`, whatever its other dimensions.
    const insights = (fn: 'SUM' | 'MAX', metric: string, table: string) =>
      new cloudwatch.MathExpression({
        expression: `SELECT ${fn}(${metric}) FROM "AWS/DynamoDB" WHERE TableName = '${table}'`,
        usingMetrics: {},
        period,
        label: `${metric} of ${table}`,
      });
    const created: cloudwatch.Alarm[] = [];
    for (const [id, table] of [
      ['Ledger', this.ledger],
      ['Audit', this.audit],
    ] as const) {
      // Missing: no write throttled. Any throttle of these tables fails a record's claim or row
      // (retried, but a steady one holds the consumers back).
      created.push(
        this.alarmTopics.alarm(this, `${id}WriteThrottles`, {
          metric: table.metric('WriteThrottleEvents', { statistic: 'Sum', period }),
          threshold: 0,
          severity: 'ticket',
          treatMissingData: missingIsQuiet,
          description: `${id === 'Ledger' ? 'EffectLedger' : 'UserAudit'} throttled writes: consumers' claims or rows are being retried.`,
        }),
      );
      if (!localAws(this)) {
        created.push(
          this.alarmTopics.alarm(this, `${id}SystemErrors`, {
            metric: insights('SUM', 'SystemErrors', table.tableName),
            threshold: 0,
            severity: 'ticket',
            treatMissingData: missingIsQuiet,
            description: `${id === 'Ledger' ? 'EffectLedger' : 'UserAudit'} answered requests with a 500 (SystemErrors): consumers retried them.`,
          }),
        );
      }
    }
    if (this.usersChanges && !localAws(this)) {
      const users = this.users.tableName;
      created.push(
        // Any record DynamoDB could not put on the stream (too large, access refused) never
        // reaches a Kinesis consumer: a loss, so it pages.
        this.alarmTopics.alarm(this, 'KinesisReplicationFailed', {
          metric: insights('SUM', 'FailedToReplicateRecordCount', users),
          threshold: 0,
          severity: 'page',
          treatMissingData: missingIsQuiet,
          description: 'DynamoDB failed to replicate Users changes to the Kinesis stream: Kinesis consumers never see them. Reconcile each Kinesis consumer.',
        }),
        this.alarmTopics.alarm(this, 'KinesisReplicationThrottled', {
          metric: insights('MAX', 'ThrottledPutRecordCount', users),
          threshold: 0,
          severity: 'ticket',
          treatMissingData: missingIsQuiet,
          description: 'the Kinesis stream throttled DynamoDB\'s replication of Users changes (retried; sustained, it ends in FailedToReplicate).',
        }),
        // 5 minutes: the Kinesis consumers' iterator-age alarms fire at 15; a change this late
        // reaching Kinesis is the replication stalling, not a consumer.
        this.alarmTopics.alarm(this, 'KinesisReplicationLag', {
          metric: insights('MAX', 'AgeOfOldestUnreplicatedRecord', users),
          threshold: KINESIS_REPLICATION_LAG_MAX_MS,
          severity: 'ticket',
          treatMissingData: missingIsQuiet,
          description: `a Users change has waited more than ${KINESIS_REPLICATION_LAG_MAX_MS / 1000} s to reach the Kinesis stream.`,
        }),
      );
    }
    return created;
  }
}

/** KinesisReplicationLag fires when a change has waited this long (ms) to reach Kinesis. */
export const KINESIS_REPLICATION_LAG_MAX_MS = 5 * 60 * 1000;
