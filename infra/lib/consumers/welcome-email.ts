import * as iam from 'aws-cdk-lib/aws-iam';
import { ConsumerStack } from '../consumer-stack';
import { context } from '../deployment';
import { ConsumerSettings } from '../settings';

/** welcome-email: the ledger (from the generic stack) and sending from one SES identity. */
export class WelcomeEmailStack extends ConsumerStack {
  protected statements(settings: ConsumerSettings): iam.PolicyStatement[] {
    const identity = context(this, 'sesIdentity');
    return [
      ...super.statements(settings),
      new iam.PolicyStatement({
        sid: 'SendFromOwnIdentityOnly',
        actions: ['ses:SendEmail'],
        resources: [this.formatArn({ service: 'ses', resource: 'identity', resourceName: identity })],
      }),
    ];
  }
}
