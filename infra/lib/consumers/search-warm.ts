import * as iam from 'aws-cdk-lib/aws-iam';
import { ConsumerStack } from '../consumer-stack';
import { context } from '../deployment';
import { ConsumerSettings } from '../settings';

/** search-warm: reads (for reconcile's check), writes and deletes the documents of one OpenSearch index, nothing else. */
export class SearchWarmStack extends ConsumerStack {
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
