import * as cdk from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';

/**
 * Where the tables stack publishes what consumer stacks need. Consumer stacks read these SSM
 * parameters at deploy time, so there is no CloudFormation export between stacks and each
 * consumer team redeploys alone.
 */
export const PARAMETERS = {
  usersTableName: '/fanout/tables/users/name',
  usersStreamArn: '/fanout/tables/users/stream-arn',
  usersStreamViewType: '/fanout/tables/users/stream-view-type',
  ledgerTableName: '/fanout/tables/ledger/name',
  auditTableName: '/fanout/tables/audit/name',
} as const;

/** What the Users stream carries; consumers check it against what they need at cold start. */
export const USERS_STREAM_VIEW = dynamodb.StreamViewType.NEW_AND_OLD_IMAGES;

export class TablesStack extends cdk.Stack {
  readonly users: dynamodb.Table;
  readonly ledger: dynamodb.Table;
  readonly audit: dynamodb.Table;

  constructor(scope: Construct, id: string, props?: cdk.StackProps) {
    super(scope, id, props);

    this.users = new dynamodb.Table(this, 'Users', {
      partitionKey: { name: 'userId', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      stream: USERS_STREAM_VIEW,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: cdk.RemovalPolicy.RETAIN,
    });

    this.ledger = new dynamodb.Table(this, 'EffectLedger', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      // TTL only tidies up: the claim condition checks expiresAt itself.
      timeToLiveAttribute: 'expiresAt',
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: cdk.RemovalPolicy.RETAIN,
    });

    this.audit = new dynamodb.Table(this, 'UserAudit', {
      partitionKey: { name: 'userId', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'auditId', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: cdk.RemovalPolicy.RETAIN,
    });

    const publish = (id: string, name: string, value: string) =>
      new ssm.StringParameter(this, id, { parameterName: name, stringValue: value });
    publish('UsersTableNameParam', PARAMETERS.usersTableName, this.users.tableName);
    publish('UsersStreamArnParam', PARAMETERS.usersStreamArn, this.users.tableStreamArn ?? '');
    publish('UsersStreamViewTypeParam', PARAMETERS.usersStreamViewType, USERS_STREAM_VIEW);
    publish('LedgerTableNameParam', PARAMETERS.ledgerTableName, this.ledger.tableName);
    publish('AuditTableNameParam', PARAMETERS.auditTableName, this.audit.tableName);
    new cdk.CfnOutput(this, 'UsersTableName', { value: this.users.tableName });
    new cdk.CfnOutput(this, 'UsersStreamArn', { value: this.users.tableStreamArn ?? '' });
    new cdk.CfnOutput(this, 'LedgerTableName', { value: this.ledger.tableName });
    new cdk.CfnOutput(this, 'AuditTableName', { value: this.audit.tableName });
  }
}
