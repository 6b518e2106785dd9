import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { NAMES, settings, tablesTemplate, templates, built } from './synth';
import { BATCH_COUNTERS, DURATION_ALARM_SHARE, MAPPING_COUNTERS, RETRYING_PERIODS, filterPatterns } from '../lib/stream-consumer';

describe('tables stack', () => {
  it('Users has key userId, a NEW_AND_OLD_IMAGES stream, PITR and is retained', () => {
    tablesTemplate.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: Match.objectLike({
        KeySchema: [{ AttributeName: 'userId', KeyType: 'HASH' }],
        StreamSpecification: { StreamViewType: 'NEW_AND_OLD_IMAGES' },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        BillingMode: 'PAY_PER_REQUEST',
      }),
    });
  });

  it('EffectLedger has key pk and TTL on expiresAt', () => {
    tablesTemplate.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
    });
  });

  it('UserAudit has userId + auditId', () => {
    tablesTemplate.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [
        { AttributeName: 'userId', KeyType: 'HASH' },
        { AttributeName: 'auditId', KeyType: 'RANGE' },
      ],
    });
  });

  const kinesisConsumers = Object.values(settings).filter((c) => c.source === 'kinesis');
  it(`streams Users to an on-demand Kinesis stream under the AWS managed key, as ${kinesisConsumers.map((c) => c.crate).join(', ') || 'no consumer'} reads it`, () => {
    assert.ok(kinesisConsumers.length > 0, 'the registry runs a consumer on Kinesis, so this is asserted');
    tablesTemplate.resourceCountIs('AWS::Kinesis::Stream', 1);
    tablesTemplate.hasResourceProperties('AWS::Kinesis::Stream', {
      StreamModeDetails: { StreamMode: 'ON_DEMAND' },
      StreamEncryption: { EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' },
      RetentionPeriodHours: 168,
    });
    tablesTemplate.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [{ AttributeName: 'userId', KeyType: 'HASH' }],
      KinesisStreamSpecification: {
        StreamArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('UsersChanges'), 'Arn'] },
        ApproximateCreationDateTimePrecision: 'MICROSECOND',
      },
    });
    tablesTemplate.hasResourceProperties('AWS::SSM::Parameter', { Name: '/fanout/tables/users/kinesis-stream-arn' });
  });

  it('alarms on Kinesis replication (failed: page; throttled, lagging: ticket) and on the ledger and audit tables refusing writes', () => {
    const alarms = Object.values(tablesTemplate.findResources('AWS::CloudWatch::Alarm'));
    const expressions = alarms.flatMap((a) => (a.Properties.Metrics ?? []).map((m: { Expression?: unknown }) => JSON.stringify(m.Expression ?? '')));
    for (const metric of ['FailedToReplicateRecordCount', 'ThrottledPutRecordCount', 'AgeOfOldestUnreplicatedRecord', 'SystemErrors']) {
      assert.ok(expressions.some((e) => e.includes(metric)), `no alarm on ${metric}: ${expressions}`);
    }
    const failed = alarms.find((a) => JSON.stringify(a.Properties.Metrics ?? '').includes('FailedToReplicateRecordCount'));
    assert.match(failed!.Properties.AlarmDescription, /\[page\]/);
    for (const metric of ['ThrottledPutRecordCount', 'AgeOfOldestUnreplicatedRecord']) {
      const alarm = alarms.find((a) => JSON.stringify(a.Properties.Metrics ?? '').includes(metric));
      assert.match(alarm!.Properties.AlarmDescription, /\[ticket\]/);
    }
    tablesTemplate.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'WriteThrottleEvents', Namespace: 'AWS/DynamoDB', Threshold: 0 });
    assert.equal(alarms.filter((a) => a.Properties.MetricName === 'WriteThrottleEvents').length, 2, 'EffectLedger and UserAudit');
    for (const alarm of alarms) assert.ok(alarm.Properties.OKActions, 'OK goes to the topic too');
  });

  it('publishes names and the stream ARN as SSM parameters', () => {
    for (const name of ['/fanout/tables/users/stream-arn', '/fanout/tables/ledger/name', '/fanout/tables/audit/name']) {
      tablesTemplate.hasResourceProperties('AWS::SSM::Parameter', { Name: name });
    }
  });
});

/** A template string value (a literal or an `Fn::Join` of literals and `Ref`s) as text. */
function renderJoin(value: unknown, ref: (name: string) => string): string {
  if (typeof value === 'string') return value;
  const join = (value as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (join) return join[1].map((part) => renderJoin(part, ref)).join(join[0]);
  const name = (value as { Ref?: string }).Ref;
  if (name) return ref(name);
  throw new Error(`not a string, join or ref: ${JSON.stringify(value)}`);
}

for (const name of NAMES) {
  const template = templates[name];
  const s = settings[name];
  const esm = s.eventSourceMapping;

  describe(`${name} stack`, () => {
    it('imports no exports; its one dependency, for deploy order only, is FanoutTables', () => {
      assert.equal(JSON.stringify(template.toJSON()).includes('Fn::ImportValue'), false);
      assert.deepEqual(
        built.consumers[name].dependencies.map((d) => d.stackName),
        [built.tables.stackName],
      );
    });

    it('runs the Rust binary on provided.al2023, arm64, with explicit memory, timeout and concurrency', () => {
      template.resourceCountIs('AWS::Lambda::Function', 1);
      template.hasResourceProperties('AWS::Lambda::Function', {
        Runtime: 'provided.al2023',
        Architectures: ['arm64'],
        Handler: 'bootstrap',
        MemorySize: s.function.memoryMiB,
        Timeout: s.function.timeoutSeconds,
        ReservedConcurrentExecutions: s.function.reservedConcurrency,
        LoggingConfig: Match.objectLike({ LogFormat: 'JSON', ApplicationLogLevel: s.logs.level }),
      });
    });

    it('sets every environment variable the binary requires', () => {
      const fn = Object.values(template.findResources('AWS::Lambda::Function'))[0];
      const variables = Object.keys(fn.Properties.Environment.Variables);
      for (const required of s.environment.required) {
        assert.ok(variables.includes(required), `${required} missing from ${variables}`);
      }
      for (const present of variables) {
        assert.ok([...s.environment.required, ...s.environment.optional].includes(present), `${present} is not a documented variable`);
      }
      // The table's stream view, from the tables stack's parameter: a cold start on a view the
      // consumer cannot serve fails at once, naming it.
      assert.match(JSON.stringify(fn.Properties.Environment.Variables.STREAM_VIEW_TYPE), /stream-view-type|SsmParameterValue/);
      // How long its ledger entries deduplicate: the reconcile window (docs/operations.md "Reconcile").
      assert.equal(fn.Properties.Environment.Variables.LEDGER_RETENTION_HOURS, String(s.ledger.retentionDays * 24));
    });

    it(`maps its source (${s.source}) with every knob from its registry entry`, () => {
      template.resourceCountIs('AWS::Lambda::EventSourceMapping', 1);
      template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
        EventSourceArn:
          s.source === 'kinesis'
            ? { 'Fn::GetAtt': [Match.stringLikeRegexp('ConsumerEnhancedFanOut'), 'ConsumerARN'] }
            : { Ref: Match.stringLikeRegexp('fanouttablesusersstreamarn') },
        StartingPosition: esm.startingPosition,
        BatchSize: esm.batchSize,
        MaximumBatchingWindowInSeconds: esm.maxBatchingWindowSeconds,
        ParallelizationFactor: 1,
        BisectBatchOnFunctionError: true,
        MaximumRetryAttempts: esm.maximumRetryAttempts,
        MaximumRecordAgeInSeconds: esm.maximumRecordAgeSeconds,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        DestinationConfig: {
          OnFailure: { Destination: { 'Fn::GetAtt': [Match.stringLikeRegexp(s.onFailure.destination === 'bucket' ? 'ConsumerOnFailureBucket' : 'ConsumerDlq'), 'Arn'] } },
        },
      });
      // The patterns, with the Users table's name (an SSM parameter resolved at deploy time)
      // written as a placeholder.
      const mapping = Object.values(template.findResources('AWS::Lambda::EventSourceMapping'))[0];
      const rendered: { data?: { tableName?: string[] } }[] = (mapping.Properties.FilterCriteria?.Filters ?? []).map((f: { Pattern: unknown }) =>
        JSON.parse(renderJoin(f.Pattern, (ref) => (/fanouttablesusersname/.test(ref) ? 'USERS' : `<${ref}>`))),
      );
      assert.deepEqual(rendered, filterPatterns(s, 'USERS'));
      if (s.source === 'kinesis') {
        assert.ok(rendered.length > 0 && rendered.every((p) => p.data?.tableName?.[0] === 'USERS'), JSON.stringify(rendered));
      }
    });

    it(`reads ${s.source === 'kinesis' ? 'through an enhanced fan-out consumer of its own, with Kinesis permissions on that consumer and the stream only' : 'the DynamoDB stream, with no Kinesis permission'}`, () => {
      const policy = Object.values(template.findResources('AWS::IAM::Policy'))[0];
      const statements = policy.Properties.PolicyDocument.Statement as { Sid: string; Action: string | string[]; Resource: unknown }[];
      const actions = statements.flatMap((st) => [st.Action].flat());
      const bySid = (sid: string) => statements.find((st) => st.Sid === sid);
      if (s.source === 'kinesis') {
        template.resourceCountIs('AWS::Kinesis::StreamConsumer', 1);
        template.hasResourceProperties('AWS::Kinesis::StreamConsumer', {
          ConsumerName: `fanout-${s.crate}`,
          StreamARN: { Ref: Match.stringLikeRegexp('fanouttablesuserskinesisstreamarn') },
        });
        const consumerId = Object.keys(template.findResources('AWS::Kinesis::StreamConsumer'))[0];
        assert.deepEqual(bySid('SubscribeThroughOwnConsumerOnly')?.Resource, { 'Fn::GetAtt': [consumerId, 'ConsumerARN'] });
        assert.deepEqual([bySid('SubscribeThroughOwnConsumerOnly')?.Action].flat().sort(), ['kinesis:DescribeStreamConsumer', 'kinesis:SubscribeToShard']);
        assert.match(JSON.stringify(bySid('ReadUsersKinesisStreamForTheMapping')?.Resource), /fanouttablesuserskinesisstreamarn/);
        assert.ok(!actions.some((a) => a.startsWith('dynamodb:') && /Stream|GetRecords|GetShardIterator/.test(a)), `${actions}`);
        assert.ok(!actions.includes('kinesis:ListStreams'));
      } else {
        template.resourceCountIs('AWS::Kinesis::StreamConsumer', 0);
        assert.ok(!actions.some((a) => a.startsWith('kinesis:')), `${actions}`);
        assert.ok(actions.includes('dynamodb:GetRecords'));
      }
    });

    it('bounds retries and record age well under the 24 h stream retention', () => {
      assert.ok(esm.maximumRetryAttempts >= 1 && esm.maximumRetryAttempts <= 100);
      assert.ok(esm.maximumRecordAgeSeconds <= 12 * 3600);
    });

    it('has its own long-retention DLQ under a rotating key only the function and the operator may use', () => {
      template.resourceCountIs('AWS::SQS::Queue', 1);
      template.hasResourceProperties('AWS::SQS::Queue', {
        MessageRetentionPeriod: 14 * 24 * 3600,
        KmsMasterKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('DlqKey'), 'Arn'] },
      });
      template.resourceCountIs('AWS::KMS::Key', 1);
      const key = Object.values(template.findResources('AWS::KMS::Key'))[0];
      assert.equal(key.Properties.EnableKeyRotation, true);
      const statements = key.Properties.KeyPolicy.Statement as { Sid: string; Action: string | string[]; Principal: unknown }[];
      const actions = (sid: string) => [statements.find((st) => st.Sid === sid)?.Action ?? []].flat();
      // The account administers the key and cannot use it: no statement but the function's
      // and the operator's grants encrypt or decrypt.
      for (const st of statements) {
        const granted = [st.Action].flat();
        const uses = granted.filter((a) => /^kms:(Decrypt|Encrypt|GenerateDataKey|ReEncrypt|\*)/.test(a));
        if (st.Sid === 'FunctionParksAndMappingDeliversOnFailure' || st.Sid === 'OperatorReadsForRedrive') continue;
        assert.deepEqual(uses, [], `${st.Sid} lets ${JSON.stringify(st.Principal)} use the key`);
      }
      assert.deepEqual(actions('FunctionParksAndMappingDeliversOnFailure').sort(), ['kms:Decrypt', 'kms:GenerateDataKey']);
      assert.deepEqual(actions('OperatorReadsForRedrive'), ['kms:Decrypt']);
    });

    it('alarms on every path a record can leave by, paging for loss and a stopped consumer, ALARM and OK to the topic of its severity', () => {
      const topics = template.findResources('AWS::SNS::Topic');
      const topicOf = (severity: string) => Object.entries(topics).find(([, t]) => String(t.Properties.DisplayName).endsWith(`: ${severity}`))![0];
      const alarms = template.findResources('AWS::CloudWatch::Alarm');
      const bySeverity: Record<string, string[]> = { page: [], ticket: [] };
      for (const [id, alarm] of Object.entries(alarms)) {
        const severity = /\[(page|ticket)\]/.exec(alarm.Properties.AlarmDescription)?.[1];
        assert.ok(severity, `${id} names no severity`);
        assert.deepEqual(alarm.Properties.AlarmActions, [{ Ref: topicOf(severity) }], id);
        assert.deepEqual(alarm.Properties.OKActions, [{ Ref: topicOf(severity) }], id);
        assert.ok(alarm.Properties.TreatMissingData, `${id} states its missing-data rule`);
        bySeverity[severity].push(id.replace(/^Consumer/, '').replace(/[0-9A-F]{8}$/, ''));
      }
      assert.deepEqual(bySeverity.page.sort(), ['DlqOldestMessageAge', 'DroppedEvents', 'Stopped']);
      assert.deepEqual(bySeverity.ticket.sort(), [
        'DlqNotEmpty', 'DurationNearTimeout', 'FunctionErrors', 'IteratorAgeHigh',
        ...(s.onFailure.destination === 'bucket' ? ['OnFailureObjects'] : []),
        'RecordsParked', 'RecordsRetrying', 'Throttles',
      ]);
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: 'ApproximateNumberOfMessagesVisible', Namespace: 'AWS/SQS', Threshold: 0, ComparisonOperator: 'GreaterThanThreshold',
      });
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: 'ApproximateAgeOfOldestMessage', Namespace: 'AWS/SQS', Threshold: s.alarms.dlqOldestMessageMaxSeconds,
      });
      assert.ok(
        s.alarms.dlqOldestMessageMaxSeconds <= (24 * 3600 - esm.maximumRecordAgeSeconds) / 2,
        'the DLQ-age alarm must leave time to redrive an OnFailure range before the stream trims it',
      );
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: 'IteratorAge', Statistic: 'Maximum', Threshold: s.alarms.iteratorAgeMaxSeconds * 1000,
      });
      assert.ok(s.alarms.iteratorAgeMaxSeconds <= 2 * 3600, 'iterator-age threshold must be far below 24 h');
      template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'Errors', Namespace: 'AWS/Lambda' });
      template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'Throttles', Namespace: 'AWS/Lambda' });
      // Records Lambda drops when the OnFailure destination refuses them: this mapping's count.
      const mappingId = Object.keys(template.findResources('AWS::Lambda::EventSourceMapping'))[0];
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: 'DroppedEventCount', Namespace: 'AWS/Lambda', Statistic: 'Sum', Threshold: 0,
        Dimensions: [{ Name: 'EventSourceMappingUUID', Value: { Ref: mappingId } }],
      });
      // Records failing inside successful invocations: core's EMF counters, for this consumer.
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: 'RetryableFailed', Namespace: 'fanout', Dimensions: [{ Name: 'Consumer', Value: s.crate }],
        EvaluationPeriods: RETRYING_PERIODS, DatapointsToAlarm: RETRYING_PERIODS, Threshold: 0,
      });
      template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'Parked', Namespace: 'fanout', Dimensions: [{ Name: 'Consumer', Value: s.crate }] });
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: 'Duration', Statistic: 'Maximum', Threshold: s.function.timeoutSeconds * 1000 * DURATION_ALARM_SHARE,
      });
      // Stopped: writes to Users with no invocation over its window, whole series (FILL).
      const stopped = Object.values(alarms).find((a) => a.Properties.Metrics);
      assert.ok(stopped, 'no Stopped alarm');
      const expression = stopped.Properties.Metrics.find((m: { Expression?: string }) => m.Expression).Expression as string;
      assert.match(expression, /FILL\(writes, 0\) > 0 AND FILL\(invocations, 0\) == 0/);
      const periods = stopped.Properties.Metrics.filter((m: { MetricStat?: unknown }) => m.MetricStat).map((m: { MetricStat: { Period: number } }) => m.MetricStat.Period);
      assert.deepEqual(periods, [s.alarms.stoppedAfterMinutes * 60, s.alarms.stoppedAfterMinutes * 60]);
    });

    it(`sends a batch it gives up on to ${s.onFailure.destination === 'bucket' ? 'a bucket of its own, whole, encrypted, expired, written only by the mapping' : 'its DLQ (the batch position)'}`, () => {
      if (s.onFailure.destination !== 'bucket') {
        template.resourceCountIs('AWS::S3::Bucket', 0);
        return;
      }
      template.resourceCountIs('AWS::S3::Bucket', 1);
      const keyId = Object.keys(template.findResources('AWS::KMS::Key'))[0];
      template.hasResource('AWS::S3::Bucket', {
        DeletionPolicy: 'Retain',
        Properties: Match.objectLike({
          BucketEncryption: {
            ServerSideEncryptionConfiguration: [
              { BucketKeyEnabled: true, ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: { 'Fn::GetAtt': [keyId, 'Arn'] } } },
            ],
          },
          PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
          LifecycleConfiguration: { Rules: [Match.objectLike({ ExpirationInDays: s.onFailure.bucketRetentionDays, Status: 'Enabled' })] },
        }),
      });
      template.hasResourceProperties('AWS::S3::BucketPolicy', {
        PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
      });
      const policy = Object.values(template.findResources('AWS::IAM::Policy'))[0];
      const statements = policy.Properties.PolicyDocument.Statement as { Sid: string; Action: string | string[] }[];
      const s3Actions = statements.flatMap((st) => [st.Action].flat()).filter((a) => a.startsWith('s3:')).sort();
      assert.deepEqual(s3Actions, ['s3:ListBucket', 's3:PutObject'], 'the mapping writes; nothing reads or deletes under the function role');
      template.hasOutput('OnFailureBucketName', {});
    });

    it('keeps its logs as long as its registry entry says', () => {
      template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: s.logs.retentionDays });
    });

    it("turns on the mapping's event counts, so DroppedEventCount exists", () => {
      template.hasResourceProperties('AWS::Lambda::EventSourceMapping', { MetricsConfig: { Metrics: ['EventCount'] } });
    });

    it('names its log group and alarm topics as outputs', () => {
      for (const output of ['LogGroupName', 'PageTopicArn', 'TicketTopicArn', 'FunctionName', 'DlqUrl']) template.hasOutput(output, {});
    });

    it('has a dashboard of the stream, the function, the DLQ and the batch counters', () => {
      template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
      const body = JSON.stringify(Object.values(template.findResources('AWS::CloudWatch::Dashboard'))[0].Properties.DashboardBody);
      for (const metric of ['IteratorAge', 'Invocations', 'Errors', 'Throttles', 'ApproximateNumberOfMessagesVisible', 'ApproximateAgeOfOldestMessage', ...BATCH_COUNTERS, ...MAPPING_COUNTERS]) {
        assert.ok(body.includes(metric), `the dashboard shows no ${metric}`);
      }
    });
  });
}

describe('ledger access', () => {
  for (const name of NAMES) {
    const reads = settings[name].ledgerEffects;
    it(`${name} ${reads ? 'reads its own ledger entries for reconcile\'s check' : 'reads no ledger entry'}`, () => {
      const statements = Object.values(templates[name].findResources('AWS::IAM::Policy')).flatMap(
        (p) => (p as { Properties: { PolicyDocument: { Statement: { Sid?: string; Action: string | string[]; Condition?: unknown }[] } } }).Properties.PolicyDocument.Statement,
      );
      const getItem = statements.filter((s) => [s.Action].flat().includes('dynamodb:GetItem'));
      if (reads) {
        assert.deepStrictEqual(
          getItem.map((s) => [s.Sid, s.Condition]),
          [['ReadOwnLedgerEntriesForReconcile', { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [`${settings[name].ledgerKeyPrefix}#*`] } }]],
        );
      } else {
        assert.deepStrictEqual(getItem, []);
      }
    });
    const keys = settings[name].ledgerEffects ? `${settings[name].ledgerKeyPrefix}#*` : `${settings[name].ledgerKeyPrefix}#parked#*`;
    it(`${name} may write only its own ledger keys (${keys})`, () => {
      templates[name].hasResourceProperties('AWS::IAM::Policy', {
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Sid: 'OwnLedgerEntriesOnly',
              Action: ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
              Condition: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [keys] } },
            }),
          ]),
        },
      });
    });
  }
});

describe('consumer targets', () => {
  const targets: [string, string, string, string | string[]][] = [
    ['WelcomeEmail', 'welcome-email sends from its own SES identity only', 'SendFromOwnIdentityOnly', 'ses:SendEmail'],
    ['CrmSync', 'crm-sync puts events on the CRM bus only', 'PutEventsOnCrmBusOnly', 'events:PutEvents'],
    ['AuditLog', 'audit-log only appends rows', 'AppendAuditRowsOnly', 'dynamodb:PutItem'],
    ['AuditLog', 'audit-log queries its rows for reconcile\'s check', 'QueryAuditRowsForReconcile', 'dynamodb:Query'],
    ['SearchWarm', 'search-warm reads and writes user documents only', 'WriteUserDocumentsOnly', ['es:ESHttpGet', 'es:ESHttpPut', 'es:ESHttpDelete']],
  ];
  for (const [name, what, sid, action] of targets.filter(([n]) => NAMES.includes(n))) {
    it(what, () =>
      templates[name].hasResourceProperties('AWS::IAM::Policy', {
        PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Sid: sid, Action: action })]) },
      }));
  }
});
