import * as cdk from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { AlarmTopics } from './alarm-topics';
import { context } from './deployment';
import { ConsumerSettings } from './settings';
import { StreamConsumer } from './stream-consumer';
import { PARAMETERS } from './tables-stack';

export interface ConsumerStackProps extends cdk.StackProps {
  readonly settings: ConsumerSettings;
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

  constructor(scope: Construct, id: string, props: ConsumerStackProps) {
    super(scope, id, props);
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
  }

  /** The consumer's variables besides DLQ_URL and MAX_CONCURRENCY. */
  protected consumerEnvironment(settings: ConsumerSettings): Record<string, string> {
    const environment: Record<string, string> = {
      // The table whose changes the function acts on: a record of any other is parked.
      USERS_TABLE: this.parameter(PARAMETERS.usersTableName),
      LEDGER_TABLE: this.parameter(PARAMETERS.ledgerTableName),
      // The function refuses to start on a stream view it cannot serve (a table changed later).
      STREAM_VIEW_TYPE: this.parameter(PARAMETERS.usersStreamViewType),
    };
    for (const [variable, key] of Object.entries(settings.environment.fromContext ?? {})) {
      environment[variable] = context(this, key);
    }
    return environment;
  }

  /** The consumer's own permissions, exact resources only. */
  protected statements(settings: ConsumerSettings): iam.PolicyStatement[] {
    return [this.ledgerStatement(settings)];
  }

  protected parameter(name: string): string {
    return ssm.StringParameter.valueForStringParameter(this, name);
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
      resources: [this.tableArn(this.parameter(PARAMETERS.ledgerTableName))],
      conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [keys] } },
    });
  }
}

