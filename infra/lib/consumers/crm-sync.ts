import * as iam from 'aws-cdk-lib/aws-iam';
import { ConsumerStack } from '../consumer-stack';
import { context } from '../deployment';
import { ConsumerSettings } from '../settings';

/** crm-sync: the ledger (from the generic stack) and PutEvents on the CRM bus only. */
export class CrmSyncStack extends ConsumerStack {
  protected statements(settings: ConsumerSettings): iam.PolicyStatement[] {
    return [
      ...super.statements(settings),
      new iam.PolicyStatement({
        sid: 'PutEventsOnCrmBusOnly',
        actions: ['events:PutEvents'],
        resources: [this.formatArn({ service: 'events', resource: 'event-bus', resourceName: context(this, 'crmEventBusName') })],
      }),
    ];
  }
}
