import * as cdk from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { AlarmTopics } from './alarm-topics';
import { localAws, optionalContext } from './deployment';

/**
 * Where the tables stack publishes what consumer stacks need. Consumer stacks read these SSM
 * parameters at deploy time, so there is no CloudFormation export between stacks and each
 * consumer team redeploys alone.
 */
export const PARAMETERS = {
  usersTableName: '/fanout/tables/users/name',
  usersStreamArn: '/fanout/tables/users/stream-arn',
  usersStreamViewType: '/fanout/tables/users/stream-view-type',
  usersKinesisStreamArn: '/fanout/tables/users/kinesis-stream-arn',
  ledgerTableName: '/fanout/tables/ledger/name',
  auditTableName: '/fanout/tables/audit/name',
} as const;

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

export interface TablesStackProps extends cdk.StackProps {
  /**
   * Whether Users also streams its changes to a Kinesis data stream (its Kinesis streaming
   * destination): on when a consumer of the registry reads `source: kinesis`. @default false
   */
  readonly kinesisDestination?: boolean;
}

export class TablesStack extends cdk.Stack {
  readonly users: dynamodb.Table;
  readonly ledger: dynamodb.Table;
  readonly audit: dynamodb.Table;
  /** The Users table's Kinesis streaming destination, when a consumer reads it. */
  readonly usersChanges?: kinesis.Stream;
  /** Where the tables' alarms go (`fanout:pageSubscriptions`, `fanout:ticketSubscriptions`). */
  readonly alarmTopics: AlarmTopics;
  readonly alarms: cloudwatch.Alarm[];

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

    this.users = new dynamodb.Table(this, 'Users', {
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

    const publish = (id: string, name: string, value: string) =>
      new ssm.StringParameter(this, id, { parameterName: name, stringValue: value });
    publish('UsersTableNameParam', PARAMETERS.usersTableName, this.users.tableName);
    publish('UsersStreamArnParam', PARAMETERS.usersStreamArn, this.users.tableStreamArn ?? '');
    publish('UsersStreamViewTypeParam', PARAMETERS.usersStreamViewType, USERS_STREAM_VIEW);
    if (this.usersChanges) {
      publish('UsersKinesisStreamArnParam', PARAMETERS.usersKinesisStreamArn, this.usersChanges.streamArn);
      new cdk.CfnOutput(this, 'UsersKinesisStreamArn', { value: this.usersChanges.streamArn });
    }
    publish('LedgerTableNameParam', PARAMETERS.ledgerTableName, this.ledger.tableName);
    publish('AuditTableNameParam', PARAMETERS.auditTableName, this.audit.tableName);
    new cdk.CfnOutput(this, 'UsersTableName', { value: this.users.tableName });
    new cdk.CfnOutput(this, 'UsersStreamArn', { value: this.users.tableStreamArn ?? '' });
    new cdk.CfnOutput(this, 'LedgerTableName', { value: this.ledger.tableName });
    new cdk.CfnOutput(this, 'AuditTableName', { value: this.audit.tableName });

    this.alarmTopics = new AlarmTopics(this, 'Alarms', { owner: 'FanoutTables' });
    this.alarmTopics.addOutputs(this);
    this.alarms = this.createAlarms();
  }

  /**
   * What can fail between a write to Users and the consumers, outside any consumer's own
   * alarms: DynamoDB failing or throttling the Kinesis replication (a change a Kinesis consumer
   * never sees), and the ledger and audit tables refusing writes. Replication loss pages; the
   * rest opens a ticket. The Metrics Insights ones (every `Operation` / `DelegatedOperation` of
   * a table at once) are AWS-only: the local AWS refuses them (README, local AWS gaps).
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
