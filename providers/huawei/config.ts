// Huawei Cloud CSMS (Cloud Secret Management Service) as a provider (`huawei:db-password`): the
// region and project, the endpoint, and where the AK/SK come from (variables, files, or the ECS
// metadata service for an agency's temporary credentials).
import * as v from 'valibot';
import type { ProviderDefinition } from '../../src/providers/contract.ts';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const REGION = /^[a-z]{2,}(-[a-z0-9]+){1,4}$/;
// IAM gives 32 hex characters; a little wider, but only characters that are safe in a URL path.
const PROJECT_ID = /^[A-Za-z0-9_-]{1,64}$/;
const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

const envName = (key: string) => v.pipe(v.string(`${key} must name an environment variable`), v.regex(ENV_NAME, `${key} must be a variable name like HUAWEI_SECRET_KEY`));
const filePath = (key: string) => v.pipe(v.string(`${key} must be a file path`), v.minLength(1, `${key} must not be empty`));

/** An http(s) URL with nothing but scheme, host and port. */
function isOrigin(text: string, allowHttp: (host: string) => boolean): boolean {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return false;
  }
  const bare = url.username === '' && url.password === '' && url.search === '' && url.hash === '' && (url.pathname === '/' || url.pathname === '');
  return bare && (url.protocol === 'https:' || (url.protocol === 'http:' && allowHttp(url.hostname)));
}

const akskAuth = v.pipe(
  v.strictObject(
    {
      method: v.literal('aksk'),
      access_key_env: v.optional(envName('access_key_env')),
      access_key_file: v.optional(filePath('access_key_file')),
      secret_key_env: v.optional(envName('secret_key_env')),
      secret_key_file: v.optional(filePath('secret_key_file')),
      security_token_env: v.optional(envName('security_token_env')),
      security_token_file: v.optional(filePath('security_token_file')),
    },
    'auth with method aksk takes access_key_env or access_key_file, secret_key_env or secret_key_file, and optionally security_token_env or security_token_file',
  ),
  v.check((a) => (a.access_key_env === undefined) !== (a.access_key_file === undefined), 'give exactly one of access_key_env and access_key_file'),
  v.check((a) => (a.secret_key_env === undefined) !== (a.secret_key_file === undefined), 'give exactly one of secret_key_env and secret_key_file'),
  v.check((a) => a.security_token_env === undefined || a.security_token_file === undefined, 'give at most one of security_token_env and security_token_file'),
);

const metadataAuth = v.strictObject(
  {
    method: v.literal('metadata'),
    // The ECS metadata service is plain http on a link-local address; overridable for tests and proxies.
    endpoint: v.optional(v.pipe(v.string('auth.endpoint must be a URL like http://169.254.169.254'), v.check((s) => isOrigin(s, () => true), 'auth.endpoint must be an http(s) URL with only a host and port, like http://169.254.169.254'))),
  },
  'auth with method metadata takes only an optional endpoint',
);

export const huaweiSchema = v.strictObject(
  {
    region: v.pipe(v.string('region must be a Huawei Cloud region like cn-north-4'), v.regex(REGION, 'region must be a Huawei Cloud region like cn-north-4')),
    project_id: v.pipe(v.string('project_id must be the project id of the region (32 hex characters)'), v.regex(PROJECT_ID, 'project_id must be the project id of the region (32 hex characters)')),
    endpoint: v.optional(
      v.pipe(
        v.string('endpoint must be a URL like https://kms.cn-north-4.myhuaweicloud.com'),
        // Secret values travel in the response: plain http only to this machine itself.
        v.check((s) => isOrigin(s, (host) => LOOPBACK.has(host)), 'endpoint must be an https URL with only a host and port (http only for localhost)'),
      ),
    ),
    auth: v.variant('method', [akskAuth, metadataAuth], 'auth must have method aksk or metadata'),
    tls: v.optional(
      v.strictObject({ ca_cert: filePath('tls.ca_cert') }, 'tls takes only ca_cert (a PEM file of CA certificates to trust)'),
    ),
  },
  'the huawei provider takes the keys region, project_id, endpoint, auth and tls',
);

export type HuaweiConfig = v.InferOutput<typeof huaweiSchema>;
export type AkskAuth = Extract<HuaweiConfig['auth'], { method: 'aksk' }>;
export type MetadataAuth = Extract<HuaweiConfig['auth'], { method: 'metadata' }>;

/** The CSMS endpoint of a region, as the SDK's region table has it for every region it lists. */
export function defaultEndpoint(region: string): string {
  return `https://kms.${region}.myhuaweicloud.com`;
}

export const DEFAULT_METADATA_ENDPOINT = 'http://169.254.169.254';

export const definition: ProviderDefinition<HuaweiConfig> = {
  kind: 'huawei',
  schema: huaweiSchema,
  environment: (c) =>
    c.auth.method === 'aksk' ? [c.auth.access_key_env, c.auth.secret_key_env, c.auth.security_token_env].filter((n): n is string => n !== undefined) : [],
  defaultIsolation: 'worker',
};
