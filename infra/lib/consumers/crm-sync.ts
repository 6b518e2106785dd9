import * as cdk from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { ConsumerStack } from '../consumer-stack';
import { context } from '../deployment';
import { ConsumerSettings } from '../settings';

/** crm-sync: the ledger (from the generic stack) and PutEvents on the CRM bus only. */
export class CrmSyncStack extends ConsumerStack {
  /** preflight: the CRM bus exists. */
  static preflightReads(scope: cdk.Stack, settings: ConsumerSettings): iam.PolicyStatement[] {
    return [
      ...super.preflightReads(scope, settings),
      new iam.PolicyStatement({
        sid: 'PreflightReadsTheCrmBus',
        actions: ['events:DescribeEventBus'],
        resources: [crmBus(scope)],
      }),
    ];
  }

  protected statements(settings: ConsumerSettings): iam.PolicyStatement[] {
    return [
      ...super.statements(settings),
      new iam.PolicyStatement({
        sid: 'PutEventsOnCrmBusOnly',
        actions: ['events:PutEvents'],
        resources: [crmBus(this)],
      }),
    ];
  }
}

/** The CRM bus `fanout:crmEventBusName` names, in `scope`'s account and region. */
function crmBus(scope: cdk.Stack): string {
  return scope.formatArn({ service: 'events', resource: 'event-bus', resourceName: context(scope, 'crmEventBusName') });
}
