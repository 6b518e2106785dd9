import * as cdk from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { ConsumerStack } from '../consumer-stack';
import { context } from '../deployment';
import { ConsumerSettings } from '../settings';

/** welcome-email: the ledger (from the generic stack) and sending from one SES identity. */
export class WelcomeEmailStack extends ConsumerStack {
  /** preflight: its identity verified, the account out of the sandbox. */
  static preflightReads(scope: cdk.Stack, settings: ConsumerSettings): iam.PolicyStatement[] {
    return [
      ...super.preflightReads(scope, settings),
      new iam.PolicyStatement({
        sid: 'PreflightReadsItsIdentity',
        actions: ['ses:GetEmailIdentity'],
        resources: [scope.formatArn({ service: 'ses', resource: 'identity', resourceName: context(scope, 'sesIdentity') })],
      }),
      // GetAccount supports no resource-level permission: the account's sending status.
      new iam.PolicyStatement({ sid: 'PreflightReadsTheSesAccount', actions: ['ses:GetAccount'], resources: ['*'] }),
    ];
  }

  protected operatorWildcards() {
    return [...super.operatorWildcards(), { appliesTo: 'Resource::*', reason: 'ses:GetAccount supports no resource-level permission.' }];
  }

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
