import * as iam from 'aws-cdk-lib/aws-iam';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { optionalContext } from './deployment';
import { physicalName } from './names';

/**
 * What the person (or role) running `fanout-ops` may do to one stack's resources: exactly the
 * calls its commands make (`crates/fanout-ops/iam-actions.json`), on this stack's resources
 * only. Every stack carries its own (FanoutTables: the tables, streams and parameters; a
 * consumer stack: its DLQ, key, function, bucket and target), because the resources live
 * there and no stack references another's; `fanout:operatorRoleArn`, when set, gets each one
 * attached. Named `fanout[-<stage>]-operator-<part>`.
 */
export class OperatorPolicy extends Construct {
  readonly policy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: { part: string; statements: iam.PolicyStatement[]; wildcards: WildcardReason[] }) {
    super(scope, id);
    this.policy = new iam.ManagedPolicy(this, 'Policy', {
      managedPolicyName: physicalName(this, `operator-${props.part}`),
      description: `fanout-ops on ${props.part}: preflight, redrive, reconcile, discard, check-items (crates/fanout-ops/iam-actions.json)`,
      statements: props.statements,
    });
    const operatorRoleArn = optionalContext(this, 'operatorRoleArn');
    if (operatorRoleArn) {
      this.policy.attachToRole(iam.Role.fromRoleArn(this, 'OperatorRole', operatorRoleArn, { mutable: true }));
    }
    if (props.wildcards.length > 0) {
      NagSuppressions.addResourceSuppressions(this.policy, [
        {
          id: 'AwsSolutions-IAM5',
          reason: props.wildcards.map((w) => w.reason).join(' '),
          appliesTo: props.wildcards.map((w) => w.appliesTo),
        },
      ]);
    }
  }
}

/** A wildcard resource (or action) of an operator policy, and why it cannot be narrower. */
export interface WildcardReason {
  readonly appliesTo: string | { regex: string };
  readonly reason: string;
}
