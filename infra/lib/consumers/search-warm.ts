import * as iam from 'aws-cdk-lib/aws-iam';
import { ConsumerStack } from '../consumer-stack';
import { context } from '../deployment';
import { ConsumerSettings } from '../settings';

/** search-warm: writes and deletes the documents of one OpenSearch index, nothing else. */
export class SearchWarmStack extends ConsumerStack {
  /** reconcile: a user's document. */
  protected operatorStatements(settings: ConsumerSettings): iam.PolicyStatement[] {
    return [
      ...super.operatorStatements(settings),
      new iam.PolicyStatement({
        sid: 'ReconcileReadsUserDocuments',
        actions: ['es:ESHttpGet'],
        resources: [this.formatArn({ service: 'es', resource: 'domain', resourceName: `${context(this, 'searchDomainName')}/${context(this, 'searchIndex')}/_doc/*` })],
      }),
    ];
  }

  protected operatorWildcards() {
    return [
      ...super.operatorWildcards(),
      {
        appliesTo: { regex: '/^Resource::arn:<AWS::Partition>:es:(<AWS::Region>|[a-z0-9-]+):(<AWS::AccountId>|[0-9]+):domain/.*/_doc/\\*$/g' },
        reason: 'The documents of the one index search-warm writes, one per user.',
      },
    ];
  }

  protected statements(settings: ConsumerSettings): iam.PolicyStatement[] {
    const domain = context(this, 'searchDomainName');
    const index = context(this, 'searchIndex');
    return [
      ...super.statements(settings),
      new iam.PolicyStatement({
        sid: 'WriteUserDocumentsOnly',
        actions: ['es:ESHttpGet', 'es:ESHttpPut', 'es:ESHttpDelete'],
        resources: [this.formatArn({ service: 'es', resource: 'domain', resourceName: `${domain}/${index}/_doc/*` })],
      }),
    ];
  }
}
