import * as iam from 'aws-cdk-lib/aws-iam';
import { ConsumerStack } from '../consumer-stack';
import { ConsumerSettings } from '../settings';

/** audit-log: appends rows to UserAudit, and reads them back only for reconcile's check. */
export class AuditLogStack extends ConsumerStack {
  protected consumerEnvironment(settings: ConsumerSettings): Record<string, string> {
    return { ...super.consumerEnvironment(settings), AUDIT_TABLE: this.parameter('auditTableName') };
  }

  protected statements(settings: ConsumerSettings): iam.PolicyStatement[] {
    return [
      ...super.statements(settings),
      new iam.PolicyStatement({
        sid: 'AppendAuditRowsOnly',
        actions: ['dynamodb:PutItem'],
        resources: [this.tableArn(this.parameter('auditTableName'))],
      }),
      new iam.PolicyStatement({
        sid: 'QueryAuditRowsForReconcile',
        actions: ['dynamodb:Query'],
        resources: [this.tableArn(this.parameter('auditTableName'))],
      }),
    ];
  }
}
