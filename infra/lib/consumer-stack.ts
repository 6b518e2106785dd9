import * as cdk from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { AlarmTopics } from './alarm-topics';
import { context } from './deployment';
import { ConsumerSettings, STREAM_RETENTION_SECONDS } from './settings';
import { kinesisRetentionHours } from './tables-stack';
import { ParameterKey, consumerParameterName, parameterName } from './names';
import { OperatorPolicy, WildcardReason } from './operator-policy';
import { StreamConsumer } from './stream-consumer';

export interface ConsumerStackProps extends cdk.StackProps {
  readonly settings: ConsumerSettings;
}

/**
 * The part of a registry entry fanout-ops works from (stack, crate, source, where the mapping
 * gives batches up to, its batch size and filters, the iterator-age threshold reconcile
 * settles by): a registry entry itself, without the reasons, well inside an SSM parameter's
 * 4 KB.
 */
export function operatedEntry(s: ConsumerSettings): Record<string, unknown> {
  return {
    stack: s.stack,
    crate: s.crate,
    source: s.source,
    decodes: s.decodes,
    onFailure: { destination: s.onFailure.destination },
    eventSourceMapping: { batchSize: s.eventSourceMapping.batchSize, filters: s.eventSourceMapping.filters },
    alarms: { iteratorAgeMaxSeconds: s.alarms.iteratorAgeMaxSeconds },
  };
}

/**
 * A stack that owns one consumer: its function, DLQ, event source mapping, IAM and alarms,
 * all from its registry entry (`infra/consumers/<crate>.json`). Used as it is for a consumer that needs nothing but
 * the ledger (when `ledgerKeyPrefix` is set) and the variables its settings map from CDK
 * context (`environment.fromContext`); a consumer with a target of its own subclasses it in
 * `lib/consumers/` and states only what differs.
 */
export class ConsumerStack extends cdk.Stack {
  readonly consumer: StreamConsumer;
  /** Where its alarms go: `page` and `ticket`. */
  readonly alarmTopics: AlarmTopics;
  /** What fanout-ops may do to this consumer's resources. */
  readonly operator: OperatorPolicy;

  constructor(scope: Construct, id: string, props: ConsumerStackProps) {
    super(scope, id, props);
    // A ledger entry must outlive every record its source can still deliver (a redrive, a
    // redelivery): else that record's effect, or its parking, happens again. The Kinesis
    // stream keeps records as long as the deployment says (fanout:usersKinesisRetentionHours).
    const { ledger, source, crate } = props.settings;
    const sourceHours = source === 'kinesis' ? kinesisRetentionHours(this) : STREAM_RETENTION_SECONDS / 3600;
    if (ledger.retentionDays * 24 <= sourceHours) {
      throw new Error(
        `infra/consumers/${crate}.json: ledger.retentionDays ${ledger.retentionDays} must outlive its source (${source} keeps records ${sourceHours} h): at least ${Math.floor(sourceHours / 24) + 1}`,
      );
    }
    const { alarms } = props.settings;
    this.alarmTopics = new AlarmTopics(this, 'Alarms', {
      owner: props.settings.crate,
      own: { page: alarms.pageSubscriptions, ticket: alarms.ticketSubscriptions },
    });
    this.consumer = new StreamConsumer(this, 'Consumer', {
      settings: props.settings,
      environment: this.consumerEnvironment(props.settings),
      statements: this.statements(props.settings),
      alarmTopics: this.alarmTopics,
    });
    // What operators and tools (fanout-ops, the e2e driver) look up, never hard-code.
    const output = (id: string, value: string, description: string) => new cdk.CfnOutput(this, id, { value, description });
    output('FunctionName', this.consumer.function.functionName, `${props.settings.crate}: the Lambda function`);
    output('DlqUrl', this.consumer.dlq.queueUrl, `${props.settings.crate}: parked records and OnFailure records`);
    output('DlqArn', this.consumer.dlq.queueArn, `${props.settings.crate}: its DLQ's ARN`);
    output('EventSourceMappingId', this.consumer.mapping.eventSourceMappingId, `${props.settings.crate}: the stream mapping`);
    output('LogGroupName', this.consumer.logGroup.logGroupName, `${props.settings.crate}: the function's logs`);
    if (this.consumer.onFailureBucket) {
      output('OnFailureBucketName', this.consumer.onFailureBucket.bucketName, `${props.settings.crate}: batches the mapping gave up on, whole`);
    }
    this.alarmTopics.addOutputs(this);
    if (this.consumer.streamConsumer) {
      output('StreamConsumerArn', this.consumer.streamConsumer.attrConsumerArn, `${props.settings.crate}: its enhanced fan-out consumer`);
    }
    this.operator = new OperatorPolicy(this, 'Operator', {
      part: props.settings.crate,
      statements: this.operatorStatements(props.settings),
      wildcards: this.operatorWildcards(),
    });
    // What fanout-ops needs of this consumer, readable without a checkout of the registry.
    new ssm.StringParameter(this, 'RegistryEntryParam', {
      parameterName: consumerParameterName(this, props.settings.crate),
      stringValue: JSON.stringify(operatedEntry(props.settings)),
      description: `fanout ${props.settings.crate}: its registry entry, as fanout-ops reads it`,
    });
  }

  /** The consumer's variables besides DLQ_URL and MAX_CONCURRENCY. */
  protected consumerEnvironment(settings: ConsumerSettings): Record<string, string> {
    const environment: Record<string, string> = {
      // The table whose changes the function acts on: a record of any other is parked.
      USERS_TABLE: this.parameter('usersTableName'),
      LEDGER_TABLE: this.parameter('ledgerTableName'),
      // The function refuses to start on a stream view it cannot serve (a table changed later).
      STREAM_VIEW_TYPE: this.parameter('usersStreamViewType'),
    };
    for (const [variable, key] of Object.entries(settings.environment.fromContext ?? {})) {
      environment[variable] = context(this, key);
    }
    return environment;
  }

  /**
   * The consumer's own permissions, exact resources only: its ledger entries, and (a consumer
   * whose effects the ledger records) reading them for `fanout-ops reconcile`'s check, which
   * runs in the function.
   */
  protected statements(settings: ConsumerSettings): iam.PolicyStatement[] {
    const statements = [this.ledgerStatement(settings)];
    if (settings.ledgerEffects) {
      statements.push(
        new iam.PolicyStatement({
          sid: 'ReadOwnLedgerEntriesForReconcile',
          actions: ['dynamodb:GetItem'],
          resources: [this.tableArn(this.parameter('ledgerTableName'))],
          conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [`${settings.ledgerKeyPrefix}#*`] } },
        }),
      );
    }
    return statements;
  }

  /**
   * What fanout-ops may do to this consumer (`crates/fanout-ops/iam-actions.json`): find it in
   * its stack's outputs, read and settle its DLQ (decrypting with its key), invoke its
   * function (records to redrive or repair, and reconcile's check, which reads the consumer's
   * record under the function's own role), and redrive its on-failure bucket. A consumer with
   * a target of its own adds what its preflight reads there.
   */
  protected operatorStatements(settings: ConsumerSettings): iam.PolicyStatement[] {
    const { consumer } = this;
    const statements = [
      new iam.PolicyStatement({
        sid: 'OutputsOfThisStack',
        actions: ['cloudformation:DescribeStacks'],
        resources: [this.formatArn({ service: 'cloudformation', resource: 'stack', resourceName: `${this.stackName}/*` })],
      }),
      new iam.PolicyStatement({
        sid: 'DlqReadAndSettled',
        actions: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility'],
        resources: [consumer.dlq.queueArn],
      }),
      new iam.PolicyStatement({ sid: 'DlqMessagesDecrypted', actions: ['kms:Decrypt'], resources: [consumer.dlqKey.keyArn] }),
      new iam.PolicyStatement({
        sid: 'RecordsThroughItsOwnFunction',
        actions: ['lambda:InvokeFunction'],
        resources: [consumer.function.functionArn],
      }),
    ];
    if (consumer.onFailureBucket) {
      statements.push(
        new iam.PolicyStatement({ sid: 'OnFailureObjectsListed', actions: ['s3:ListBucket'], resources: [consumer.onFailureBucket.bucketArn] }),
        new iam.PolicyStatement({
          sid: 'OnFailureObjectsRedriven',
          actions: ['s3:GetObject', 's3:DeleteObject'],
          resources: [consumer.onFailureBucket.arnForObjects('aws/lambda/*')],
        }),
      );
    }
    return [...statements, ...(this.constructor as typeof ConsumerStack).preflightReads(this, settings)];
  }

  /**
   * What `fanout-ops preflight` reads of this consumer's prerequisites beyond the tables'
   * parameters (its target's identity, bus, ...), in `scope`'s account and region: part of its
   * operator policy and of its team's deploy role (PipelineRolesStack), one list for both. A
   * stack class with prerequisites of its own overrides it.
   */
  static preflightReads(scope: cdk.Stack, settings: ConsumerSettings): iam.PolicyStatement[] {
    void scope;
    void settings;
    return [];
  }

  /** The wildcards of the operator policy and why each is as narrow as it can be. */
  protected operatorWildcards(): WildcardReason[] {
    return [
      {
        appliesTo: { regex: '/^Resource::arn:<AWS::Partition>:cloudformation:(<AWS::Region>|[a-z0-9-]+):(<AWS::AccountId>|[0-9]+):stack/[A-Za-z0-9-]+/\\*$/g' },
        reason: 'A stack ARN ends in an ID CloudFormation assigns; the name before it is this stack\'s.',
      },
      {
        appliesTo: { regex: '/^Resource::<ConsumerOnFailureBucket[A-Za-z0-9]+\\.Arn>\\/aws\\/lambda\\/\\*$/g' },
        reason: 'Lambda names the on-failure objects itself, under aws/lambda/ of this consumer\'s own bucket.',
      },
    ];
  }

  /** What `FanoutTables` published under `key`, read at deploy time. */
  protected parameter(key: ParameterKey): string {
    return ssm.StringParameter.valueForStringParameter(this, parameterName(this, key));
  }

  protected tableArn(tableName: string): string {
    return this.formatArn({ service: 'dynamodb', resource: 'table', resourceName: tableName });
  }

  /**
   * Ledger writes limited to this consumer's own keys: all of `<prefix>#*` when it claims its
   * effects there, else only the entries that park a poison record once.
   */
  protected ledgerStatement(settings: ConsumerSettings): iam.PolicyStatement {
    const keys = settings.ledgerEffects ? `${settings.ledgerKeyPrefix}#*` : `${settings.ledgerKeyPrefix}#parked#*`;
    return new iam.PolicyStatement({
      sid: 'OwnLedgerEntriesOnly',
      actions: ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
      resources: [this.tableArn(this.parameter('ledgerTableName'))],
      conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [keys] } },
    });
  }
}

