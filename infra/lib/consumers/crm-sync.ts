import * as iam from 'aws-cdk-lib/aws-iam';
import { ConsumerStack } from '../consumer-stack';
import { context } from '../deployment';
import { ConsumerSettings } from '../settings';

/** crm-sync: the ledger (from the generic stack) and PutEvents on the CRM bus only. */
export class CrmSyncStack extends ConsumerStack {
  /** preflight: the CRM bus exists. */
  protected operatorStatements(settings: ConsumerSettings): iam.PolicyStatement[] {
    return [
      ...super.operatorStatements(settings),
      new iam.PolicyStatement({
        sid: 'PreflightReadsTheCrmBus',
        actions: ['events:DescribeEventBus'],
        resources: [this.crmBus()],
      }),
    ];
  }

  protected statements(settings: ConsumerSettings): iam.PolicyStatement[] {
    return [
      ...super.statements(settings),
      new iam.PolicyStatement({
        sid: 'PutEventsOnCrmBusOnly',
        actions: ['events:PutEvents'],
        resources: [this.crmBus()],
      }),
    ];
  }

  /** The CRM bus `fanout:crmEventBusName` names. */
  private crmBus(): string {
    return this.formatArn({ service: 'events', resource: 'event-bus', resourceName: context(this, 'crmEventBusName') });
  }
}
