// The `aws` provider's dso.yaml entry (AWS Secrets Manager): the region, an optional endpoint (a
// VPC endpoint, or an emulator), the staging label read by default, and how DSO gets AWS
// credentials, with the environment variables each way needs passed through. No SDK here.
import * as v from 'valibot';
import type { ProviderDefinition } from '../../src/providers/contract.ts';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const REGION = /^[a-z]{2,}(-[a-z0-9]+)+$/;
const PROFILE = /^[A-Za-z0-9_.+@=-]{1,128}$/;
/** Secrets Manager staging labels: 1 to 256 characters; these are the ones a reference can carry too. */
const STAGE = /^[A-Za-z0-9_.+=@-]{1,256}$/;

/** The stage Secrets Manager reads when a request names neither a version nor a stage. */
export const CURRENT_STAGE = 'AWSCURRENT';

const INLINE_CREDENTIAL =
  'a credential written in dso.yaml would be readable by anyone who can read the file (and by its backups and copies); name an environment variable (access_key_id_env, secret_access_key_env, session_token_env) or a credentials file (credentials_file) instead';

const envName = (key: string, example: string) =>
  v.pipe(v.string(`${key} must name an environment variable`), v.regex(ENV_NAME, `${key} must be a variable name like ${example}`));
const filePath = (key: string) => v.pipe(v.string(`${key} must be a file path`), v.minLength(1, `${key} must not be empty`));
const profileName = (key: string) => v.pipe(v.string(`${key} must be a profile name`), v.regex(PROFILE, `${key} must be a profile name: letters, digits and _ . + @ = -`));

function endpointIsUsable(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.username === '' && u.password === '' && u.search === '' && u.hash === '' && u.hostname !== '';
  } catch {
    return false;
  }
}

const ENDPOINT_FORM = 'endpoint must be an http(s) URL like https://vpce-0123-abcd.secretsmanager.eu-west-1.vpce.amazonaws.com, without credentials, query or fragment';

/** The SDK's default chain: environment, shared files (AWS_PROFILE), web identity, container, instance role. */
const defaultAuth = v.strictObject({ method: v.literal('default') }, 'auth with method default takes no other keys');

/** The role of the machine: ECS/EKS container credentials, else the EC2 instance profile (IMDS). */
const iamAuth = v.strictObject({ method: v.literal('iam') }, 'auth with method iam takes no other keys');

const staticAuth = v.pipe(
  v.strictObject(
    {
      method: v.literal('static'),
      access_key_id_env: v.optional(envName('access_key_id_env', 'AWS_ACCESS_KEY_ID')),
      secret_access_key_env: v.optional(envName('secret_access_key_env', 'AWS_SECRET_ACCESS_KEY')),
      session_token_env: v.optional(envName('session_token_env', 'AWS_SESSION_TOKEN')),
      credentials_file: v.optional(filePath('credentials_file')),
      profile: v.optional(profileName('profile')),
      access_key_id: v.optional(v.never(`access_key_id: ${INLINE_CREDENTIAL}`)),
      secret_access_key: v.optional(v.never(`secret_access_key: ${INLINE_CREDENTIAL}`)),
      session_token: v.optional(v.never(`session_token: ${INLINE_CREDENTIAL}`)),
    },
    'auth with method static takes access_key_id_env, secret_access_key_env and session_token_env, or credentials_file and profile',
  ),
  v.check((a) => (a.access_key_id_env === undefined) === (a.secret_access_key_env === undefined), 'give both access_key_id_env and secret_access_key_env'),
  v.check((a) => (a.access_key_id_env === undefined) !== (a.credentials_file === undefined), 'give access_key_id_env and secret_access_key_env, or credentials_file, not both'),
  v.check((a) => a.session_token_env === undefined || a.access_key_id_env !== undefined, 'session_token_env goes with access_key_id_env and secret_access_key_env (a credentials file holds its own aws_session_token)'),
  v.check((a) => a.profile === undefined || a.credentials_file !== undefined, 'profile names a section of credentials_file; for a profile of ~/.aws/config use method: profile'),
);

/** A named profile of the shared config and credentials files (static keys, assume role, process...). */
const profileAuth = v.strictObject(
  {
    method: v.literal('profile'),
    profile: profileName('profile'),
    config_file: v.optional(filePath('config_file')),
    credentials_file: v.optional(filePath('credentials_file')),
  },
  'auth with method profile takes profile, config_file and credentials_file',
);

/** A profile of the shared config file set up for IAM Identity Center (`aws sso login`). */
const ssoAuth = v.strictObject(
  {
    method: v.literal('sso'),
    profile: profileName('profile'),
    config_file: v.optional(filePath('config_file')),
  },
  'auth with method sso takes profile and config_file',
);

export const awsSchema = v.strictObject(
  {
    region: v.optional(v.pipe(v.string('region must be an AWS region like eu-west-1'), v.regex(REGION, 'region must be an AWS region like eu-west-1'))),
    endpoint: v.optional(v.pipe(v.string(ENDPOINT_FORM), v.check(endpointIsUsable, ENDPOINT_FORM))),
    version_stage: v.optional(v.pipe(v.string('version_stage must be a staging label like AWSCURRENT'), v.regex(STAGE, 'version_stage must be a staging label like AWSCURRENT or AWSPREVIOUS'))),
    auth: v.optional(
      v.variant('method', [defaultAuth, iamAuth, staticAuth, profileAuth, ssoAuth], 'auth.method must be default, iam, static, profile or sso'),
    ),
  },
  'the aws provider takes the keys region, endpoint, version_stage and auth',
);

export type AwsConfig = v.InferOutput<typeof awsSchema>;
export type AwsAuthConfig = NonNullable<AwsConfig['auth']>;

/** Where the region comes from when dso.yaml gives none (the SDK's own variables). */
export const REGION_VARIABLES = ['AWS_REGION', 'AWS_DEFAULT_REGION'];

/** What the shared config and credentials files are found by (and an SSO token cache, under HOME). */
const FILE_VARIABLES = ['HOME', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE'];

/** What the container and instance-metadata credential readers read (DSO's own, the same variables as the SDK's). */
const ROLE_VARIABLES = [
  'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
  'AWS_CONTAINER_CREDENTIALS_FULL_URI',
  'AWS_CONTAINER_AUTHORIZATION_TOKEN',
  'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE',
  'AWS_EC2_METADATA_DISABLED',
  'AWS_EC2_METADATA_SERVICE_ENDPOINT',
  'AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE',
  'AWS_EC2_METADATA_V1_DISABLED',
];

/**
 * Everything the SDK's default chain (@aws-sdk/credential-provider-node) reads, in the order it
 * tries: static keys, the profile and its files, web identity (EKS, GitHub OIDC...), then the
 * container and instance roles.
 */
export const DEFAULT_CHAIN_VARIABLES = [
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_CREDENTIAL_EXPIRATION',
  'AWS_CREDENTIAL_SCOPE',
  'AWS_ACCOUNT_ID',
  'AWS_PROFILE',
  ...FILE_VARIABLES,
  'AWS_WEB_IDENTITY_TOKEN_FILE',
  'AWS_ROLE_ARN',
  'AWS_ROLE_SESSION_NAME',
  ...ROLE_VARIABLES,
];

function authVariables(auth: AwsAuthConfig): string[] {
  switch (auth.method) {
    case 'default':
      return DEFAULT_CHAIN_VARIABLES;
    case 'iam':
      return ROLE_VARIABLES;
    case 'profile':
    case 'sso':
      return FILE_VARIABLES;
    case 'static':
      return [];
  }
}

export const definition: ProviderDefinition<AwsConfig> = {
  kind: 'aws',
  schema: awsSchema,
  environment: (c) => {
    const a = c.auth;
    if (a?.method !== 'static' || a.access_key_id_env === undefined) return [];
    return [a.access_key_id_env, a.secret_access_key_env!, ...(a.session_token_env === undefined ? [] : [a.session_token_env])];
  },
  optionalEnvironment: (c) => [...authVariables(c.auth ?? { method: 'default' }), ...(c.region === undefined ? REGION_VARIABLES : [])],
  defaultIsolation: 'worker',
};
