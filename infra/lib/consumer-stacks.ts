import * as cdk from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { ConsumerName, ConsumerSettings } from './settings';
import { StreamConsumer } from './stream-consumer';
import { PARAMETERS } from './tables-stack';

export interface ConsumerStackProps extends cdk.StackProps {
  readonly settings: ConsumerSettings;
}

/** Deployment choices read from CDK context (cdk.json or `-c key=value`). */
function context(scope: Construct, key: string): string {
  const value = scope.node.tryGetContext(`fanout:${key}`);
  if (typeof value !== 'string' || value === '') {
    throw new Error(`missing CDK context fanout:${key} (set it in cdk.json or with -c fanout:${key}=...)`);
  }
  return value;
}

/** A stack that owns one consumer; subclasses state what differs. */
export abstract class ConsumerStack extends cdk.Stack {
  readonly consumer: StreamConsumer;
  readonly alarmTopic: sns.Topic;

  constructor(scope: Construct, id: string, props: ConsumerStackProps) {
    super(scope, id, props);
    this.alarmTopic = new sns.Topic(this, 'Alarms', { enforceSSL: true, displayName: `fanout ${props.settings.crate} alarms` });
    const email = this.node.tryGetContext('fanout:alarmEmail');
    if (typeof email === 'string' && email !== '') {
      this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(email));
    }
    NagSuppressions.addResourceSuppressions(this.alarmTopic, [
      {
        id: 'AwsSolutions-SNS2',
        reason: 'Alarm notifications carry no personal data; CloudWatch cannot publish to a topic encrypted with the AWS managed SNS key.',
      },
    ]);
    this.consumer = new StreamConsumer(this, 'Consumer', {
      settings: props.settings,
      environment: this.consumerEnvironment(props.settings),
      statements: this.statements(props.settings),
      alarmTopic: this.alarmTopic,
    });
  }

  protected abstract consumerEnvironment(settings: ConsumerSettings): Record<string, string>;
  protected abstract statements(settings: ConsumerSettings): iam.PolicyStatement[];

  protected parameter(name: string): string {
    return ssm.StringParameter.valueForStringParameter(this, name);
  }

  protected tableArn(tableName: string): string {
    return this.formatArn({ service: 'dynamodb', resource: 'table', resourceName: tableName });
  }

  /** Ledger writes limited to this consumer's own key prefix. */
  protected ledgerStatement(settings: ConsumerSettings): iam.PolicyStatement {
    if (!settings.ledgerKeyPrefix) throw new Error(`${settings.crate} has no ledger key prefix`);
    return new iam.PolicyStatement({
      sid: 'OwnLedgerEntriesOnly',
      actions: ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
      resources: [this.tableArn(this.parameter(PARAMETERS.ledgerTableName))],
      conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [`${settings.ledgerKeyPrefix}#*`] } },
    });
  }
}

export class WelcomeEmailStack extends ConsumerStack {
  protected consumerEnvironment(): Record<string, string> {
    return { LEDGER_TABLE: this.parameter(PARAMETERS.ledgerTableName), FROM_ADDRESS: context(this, 'fromAddress') };
  }

  protected statements(settings: ConsumerSettings): iam.PolicyStatement[] {
    const identity = context(this, 'sesIdentity');
    return [
      this.ledgerStatement(settings),
      new iam.PolicyStatement({
        sid: 'SendFromOwnIdentityOnly',
        actions: ['ses:SendEmail'],
        resources: [this.formatArn({ service: 'ses', resource: 'identity', resourceName: identity })],
      }),
    ];
  }
}

export class CrmSyncStack extends ConsumerStack {
  protected consumerEnvironment(): Record<string, string> {
    return { LEDGER_TABLE: this.parameter(PARAMETERS.ledgerTableName), CRM_EVENT_BUS: context(this, 'crmEventBusName') };
  }

  protected statements(settings: ConsumerSettings): iam.PolicyStatement[] {
    return [
      this.ledgerStatement(settings),
      new iam.PolicyStatement({
        sid: 'PutEventsOnCrmBusOnly',
        actions: ['events:PutEvents'],
        resources: [this.formatArn({ service: 'events', resource: 'event-bus', resourceName: context(this, 'crmEventBusName') })],
      }),
    ];
  }
}

export class SearchWarmStack extends ConsumerStack {
  protected consumerEnvironment(): Record<string, string> {
    return { SEARCH_ENDPOINT: context(this, 'searchEndpoint'), SEARCH_INDEX: context(this, 'searchIndex') };
  }

  protected statements(): iam.PolicyStatement[] {
    const domain = context(this, 'searchDomainName');
    const index = context(this, 'searchIndex');
    return [
      new iam.PolicyStatement({
        sid: 'WriteUserDocumentsOnly',
        actions: ['es:ESHttpPut', 'es:ESHttpDelete'],
        resources: [this.formatArn({ service: 'es', resource: 'domain', resourceName: `${domain}/${index}/_doc/*` })],
      }),
    ];
  }
}

export class AuditLogStack extends ConsumerStack {
  protected consumerEnvironment(): Record<string, string> {
    return { AUDIT_TABLE: this.parameter(PARAMETERS.auditTableName) };
  }

  protected statements(): iam.PolicyStatement[] {
    return [
      new iam.PolicyStatement({
        sid: 'AppendAuditRowsOnly',
        actions: ['dynamodb:PutItem'],
        resources: [this.tableArn(this.parameter(PARAMETERS.auditTableName))],
      }),
    ];
  }
}

export const CONSUMER_STACKS: Record<ConsumerName, new (scope: Construct, id: string, props: ConsumerStackProps) => ConsumerStack> = {
  WelcomeEmail: WelcomeEmailStack,
  CrmSync: CrmSyncStack,
  SearchWarm: SearchWarmStack,
  AuditLog: AuditLogStack,
};
