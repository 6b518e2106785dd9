// The consumer stacks with something of their own (a target, its permissions). A consumer of
// registry (infra/consumers/) that is not listed here gets the generic ConsumerStack built from its
// settings alone. One line per consumer, as cdk-nag registers its rules.
import { ConsumerStack, ConsumerStackProps } from '../consumer-stack';
import { AuditLogStack } from './audit-log';
import { CrmSyncStack } from './crm-sync';
import { SearchWarmStack } from './search-warm';
import { WelcomeEmailStack } from './welcome-email';
import { Construct } from 'constructs';

import * as cdk from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { ConsumerSettings } from '../settings';

export type ConsumerStackClass = (new (scope: Construct, id: string, props: ConsumerStackProps) => ConsumerStack) & {
  preflightReads(scope: cdk.Stack, settings: ConsumerSettings): iam.PolicyStatement[];
};

export const CONSUMER_STACKS: Record<string, ConsumerStackClass> = {
  WelcomeEmail: WelcomeEmailStack,
  CrmSync: CrmSyncStack,
  SearchWarm: SearchWarmStack,
  AuditLog: AuditLogStack,
};

/** The stack class of a consumer: its own, or the generic one. */
export function stackClassFor(name: string): ConsumerStackClass {
  return CONSUMER_STACKS[name] ?? ConsumerStack;
}
