// Every CDK context key the app reads (`-c fanout:<key>=<value>` or infra/cdk.json), declared
// once: what it is, its default and meaning. `context()` and `optionalContext()` refuse a key
// not declared here, and docs/settings.md is generated from this list (`make settings-reference`).

/** One deployment setting. */
export interface ContextKey {
  /** Without the `fanout:` prefix. */
  readonly key: string;
  /** What it takes. */
  readonly type: string;
  /** Its value when unset: `required` when synthesis refuses to go without it. */
  readonly default: string;
  readonly meaning: string;
}

export const CONTEXT_KEYS: readonly ContextKey[] = [
  { key: 'architecture', type: '`arm64` or `x86_64`', default: '`arm64`', meaning: 'The functions\' instruction set: Graviton (cheaper per GB-second), or x86_64 for a local AWS on an x86_64 machine. `make deploy ARCH=` sets it; arm64 builds need `make tools-arm64`.' },
  { key: 'buildProfile', type: '`release` or `dev`', default: '`release`', meaning: 'The Cargo profile the bundled binaries are built with; `dev` builds in a third of the time, for a local AWS.' },
  { key: 'registryDir', type: 'a folder', default: '`infra/consumers/`', meaning: 'Deploy from another registry (one `<crate>.json` per consumer), for example an environment\'s own settings.' },
  { key: 'stage', type: '1 to 16 of `a-z`, `0-9`, `-`', default: 'none: the unstaged names', meaning: 'Which deployment this is (`dev`, `prod`): stacks `<Stack>-<stage>`, parameters `/fanout/<stage>/...`, and every other name that would collide. `make deploy STAGE=` sets it.' },
  { key: 'pageSubscriptions', type: 'comma-separated emails and `https://` endpoints, or `none`', default: 'required', meaning: 'Who hears the alarms that page (records lost, a consumer stopped). A registry entry may override it (`alarms.pageSubscriptions`).' },
  { key: 'ticketSubscriptions', type: 'comma-separated emails and `https://` endpoints, or `none`', default: 'required', meaning: 'Who hears the alarms that open a ticket (the rest). A registry entry may override it (`alarms.ticketSubscriptions`).' },
  { key: 'alarmSubscriptions', type: 'refused', default: 'unset', meaning: 'The former single subscriber list: synthesis refuses it and names `fanout:pageSubscriptions` and `fanout:ticketSubscriptions`.' },
  { key: 'usersTableName', type: 'a DynamoDB table name', default: 'none: FanoutTables creates the table', meaning: 'The existing Users table to attach to (with `fanout:usersStreamArn`); no fanout stack can change or delete it.' },
  { key: 'usersStreamArn', type: 'a DynamoDB stream ARN of that table', default: 'none', meaning: 'The attached table\'s current stream (with `fanout:usersTableName`).' },
  { key: 'usersKinesisRetentionHours', type: '24 to 8760', default: '`168`', meaning: 'How long the Users Kinesis stream keeps records; deployed only when a consumer\'s `source` is `kinesis`. A Kinesis consumer\'s ledger retention must outlive it.' },
  { key: 'operatorRoleArn', type: 'an IAM role ARN', default: 'none: policies attached by hand', meaning: 'The role that runs `fanout-ops`: may decrypt the DLQs, and gets every stack\'s operator policy.' },
  { key: 'localAws', type: '`true` or `false`', default: '`false`', meaning: 'Deploying into a local AWS (ministack): leaves out what it refuses (metric-math and Metrics Insights alarms, the Kinesis mappings\' `tableName` filter). Never for AWS.' },
  { key: 'kinesisMappingOnStream', type: '`true` or `false`', default: '`false`', meaning: 'Local AWS only (with `fanout:localAws=true`): a Kinesis consumer\'s mapping reads the stream ARN instead of its enhanced fan-out consumer, which ministack refuses.' },
  { key: 'githubRepository', type: '`owner/name`', default: 'none: no pipeline roles', meaning: 'The repository whose workflows deploy this stage; with `fanout:stage`, the app gains `FanoutPipelineRoles-<stage>`.' },
  { key: 'githubOidcProvider', type: '`create` or the provider\'s ARN', default: 'required with `fanout:githubRepository`', meaning: 'GitHub\'s OIDC provider: created by the roles stack, or the account\'s existing one (an account has one per URL).' },
  { key: 'sesIdentity', type: 'an SES identity (domain or address)', default: 'required by welcome-email', meaning: 'The verified identity welcome-email sends from; its role may send from it alone.' },
  { key: 'fromAddress', type: 'an email address', default: 'required by welcome-email', meaning: 'The sender welcome-email writes (`FROM_ADDRESS`); inside `fanout:sesIdentity`.' },
  { key: 'crmEventBusName', type: 'an EventBridge bus name', default: 'required by crm-sync', meaning: 'The CRM bus crm-sync puts events on (`CRM_EVENT_BUS`).' },
  { key: 'searchDomainName', type: 'an OpenSearch domain name', default: 'required by search-warm', meaning: 'The domain search-warm\'s role may write to.' },
  { key: 'searchEndpoint', type: '`https://...`', default: 'required by search-warm', meaning: 'The domain\'s endpoint (`SEARCH_ENDPOINT`).' },
  { key: 'searchIndex', type: 'an index name', default: 'required by search-warm', meaning: 'The index of the users\' documents (`SEARCH_INDEX`); its role may write `<index>/_doc/*` alone.' },
];

/** The declaration of `key`, or an error naming where keys are declared. */
export function declared(key: string): ContextKey {
  const found = CONTEXT_KEYS.find((k) => k.key === key);
  if (found === undefined) throw new Error(`fanout:${key} is read but not declared in infra/lib/context-keys.ts`);
  return found;
}
