import * as cdk from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { AlarmSubscriber, Severity, alarmSubscribers } from './deployment';

export interface AlarmTopicsProps {
  /** Whose alarms these are, in messages: a crate name, or `FanoutTables`. */
  readonly owner: string;
  /** A consumer's own subscribers per severity (its registry entry), overriding the app-wide ones. */
  readonly own?: Partial<Record<Severity, string[] | 'none'>>;
}

/** What one alarm watches and when it fires. */
export interface FanoutAlarmProps {
  readonly metric: cloudwatch.IMetric;
  /** Fires above this. */
  readonly threshold: number;
  /** A page wakes a person (loss, a stopped consumer); a ticket is for working hours. */
  readonly severity: Severity;
  /** Why it fires and what it means, in the alarm's description. */
  readonly description: string;
  /** How an empty period counts, with the reason beside the call. */
  readonly treatMissingData: cloudwatch.TreatMissingData;
  /** Periods looked at, all of which must breach. @default 1 */
  readonly evaluationPeriods?: number;
}

/**
 * The two topics a stack's alarms reach: `Page` (a person now: records lost or a consumer
 * stopped) and `Ticket` (the rest), each with the subscribers its setting names
 * (`fanout:pageSubscriptions`, `fanout:ticketSubscriptions`). Every alarm sends ALARM and OK,
 * so whoever was told also hears that it is over.
 */
export class AlarmTopics extends Construct {
  readonly page: sns.Topic;
  readonly ticket: sns.Topic;
  private readonly owner: string;

  constructor(scope: Construct, id: string, props: AlarmTopicsProps) {
    super(scope, id);
    this.owner = props.owner;
    this.page = this.topic('Page', 'page', props.own?.page);
    this.ticket = this.topic('Ticket', 'ticket', props.own?.ticket);
  }

  private topic(id: string, severity: Severity, own: string[] | 'none' | undefined): sns.Topic {
    const topic = new sns.Topic(this, id, { enforceSSL: true, displayName: `fanout ${this.owner} alarms: ${severity}` });
    for (const subscriber of alarmSubscribers(this, this.owner, severity, own)) topic.addSubscription(subscription(subscriber));
    NagSuppressions.addResourceSuppressions(topic, [
      {
        id: 'AwsSolutions-SNS2',
        reason: 'Alarm notifications carry no personal data; CloudWatch cannot publish to a topic encrypted with the AWS managed SNS key.',
      },
    ]);
    return topic;
  }

  /** The topic of `severity`. */
  topicOf(severity: Severity): sns.ITopic {
    return severity === 'page' ? this.page : this.ticket;
  }

  /** An alarm in `scope` whose ALARM and OK reach the topic of its severity. */
  alarm(scope: Construct, id: string, props: FanoutAlarmProps): cloudwatch.Alarm {
    const evaluationPeriods = props.evaluationPeriods ?? 1;
    const created = new cloudwatch.Alarm(scope, id, {
      metric: props.metric,
      threshold: props.threshold,
      evaluationPeriods,
      datapointsToAlarm: evaluationPeriods,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: props.treatMissingData,
      alarmDescription: `${this.owner} [${props.severity}]: ${props.description} See docs/operations.md "When an alarm fires".`,
    });
    const action = new cwActions.SnsAction(this.topicOf(props.severity));
    created.addAlarmAction(action);
    created.addOkAction(action);
    return created;
  }

  /** The topics' ARNs as stack outputs, for whoever wires a pager or a ticket queue to them. */
  addOutputs(stack: cdk.Stack): void {
    new cdk.CfnOutput(stack, 'PageTopicArn', { value: this.page.topicArn, description: `${this.owner}: alarms that page` });
    new cdk.CfnOutput(stack, 'TicketTopicArn', { value: this.ticket.topicArn, description: `${this.owner}: alarms that open a ticket` });
  }
}

function subscription(subscriber: AlarmSubscriber): sns.ITopicSubscription {
  return subscriber.kind === 'email'
    ? new subscriptions.EmailSubscription(subscriber.address)
    : new subscriptions.UrlSubscription(subscriber.url, { protocol: sns.SubscriptionProtocol.HTTPS });
}
