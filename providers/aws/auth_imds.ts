// The EC2 instance profile's credentials from the instance metadata service, as the SDK's
// fromInstanceMetadata gets them (IMDSv2 session token, falling back to v1 when the token request
// times out or is refused, unless AWS_EC2_METADATA_V1_DISABLED), but with every answer read
// within a size limit: the SDK's reader keeps whatever the service sends, so an endless answer
// would fill the memory DSO shares with its Worker.
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { ProviderError } from '../../src/providers/contract.ts';
import { keptUntilExpiry, parseCredentialsDocument, requestCapped, withOneRetry, type Answer } from './credential_http.ts';

const SOURCE = 'the instance metadata service';
const TOKEN_PATH = '/latest/api/token';
const ROLE_PATH = '/latest/meta-data/iam/security-credentials/';
const TOKEN_TTL_SECONDS = 21_600;
const ROLE_NAME = /^[\w+=,.@-]{1,128}$/;

export interface ImdsOptions {
  /** Each request's limit (the SDK's 1 s). */
  timeoutMs: number;
  /** The provider's environment (endpoint, endpoint mode, v1 switch). */
  env: Readonly<Record<string, string>>;
}

export function instanceMetadataCredentials(options: ImdsOptions): AwsCredentialIdentityProvider {
  const { env, timeoutMs } = options;
  const base = env.AWS_EC2_METADATA_SERVICE_ENDPOINT || (env.AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE?.toLowerCase() === 'ipv6' ? 'http://[fd00:ec2::254]' : 'http://169.254.169.254');
  const v1Disabled = (env.AWS_EC2_METADATA_V1_DISABLED ?? '').toLowerCase() === 'true';
  // One retry, as the SDK's maxRetries: 1, for a request that failed or timed out or an answer 5xx.
  const request = (method: string, path: string, headers: Record<string, string>): Promise<Answer> => withOneRetry(() => requestCapped(SOURCE, new URL(path, base), method, headers, timeoutMs));

  /** undefined: ask without one (IMDSv1), unless `required`. */
  const sessionToken = async (required: boolean): Promise<string | undefined> => {
    const v1 = !required && !v1Disabled;
    let answer: Answer | undefined;
    try {
      answer = await request('PUT', TOKEN_PATH, { 'x-aws-ec2-metadata-token-ttl-seconds': String(TOKEN_TTL_SECONDS) });
    } catch (e) {
      // A container past the hop limit never gets the token's answer; v1 may still work.
      if (!(e instanceof ProviderError && e.kind === 'timeout') || !v1) throw e;
    }
    if (answer?.status === 200 && answer.text.trim() !== '') return answer.text.trim();
    if (answer !== undefined && !(v1 && [403, 404, 405].includes(answer.status))) throw failed(answer.status, 'a session token');
    if (!v1) throw new ProviderError('auth', `${SOURCE} gives no session token${v1Disabled ? ' and AWS_EC2_METADATA_V1_DISABLED forbids asking without one' : ''}`);
    return undefined;
  };

  const fetchCredentials = async (): Promise<AwsCredentialIdentity> => {
    let token = await sessionToken(false);
    const headersFor = (t: string | undefined): Record<string, string> => (t === undefined ? {} : { 'x-aws-ec2-metadata-token': t });
    let roles = await request('GET', ROLE_PATH, headersFor(token));
    if (roles.status === 401 && token === undefined) {
      // The service requires tokens after all (the token request had only timed out): ask again.
      token = await sessionToken(true);
      roles = await request('GET', ROLE_PATH, headersFor(token));
    }
    const headers = headersFor(token);
    if (roles.status !== 200) throw failed(roles.status, 'the instance role');
    const role = roles.text.split('\n')[0]!.trim();
    if (!ROLE_NAME.test(role)) throw new ProviderError('invalid_response', `${SOURCE} answered something that is not a role name`);
    const answer = await request('GET', `${ROLE_PATH}${role}`, headers);
    if (answer.status !== 200) throw failed(answer.status, `the credentials of role ${role}`);
    return parseCredentialsDocument(SOURCE, answer.text);
  };

  return keptUntilExpiry(fetchCredentials);
}

function failed(status: number, what: string): ProviderError {
  // 404: no role attached to the instance; 401/403: the token was refused or the service is off.
  if (status === 401 || status === 403 || status === 404) return new ProviderError('auth', `${SOURCE} gave no ${what} (HTTP ${status}): is an instance profile attached?`);
  return new ProviderError(status >= 500 || status === 429 ? 'unavailable' : 'invalid_response', `${SOURCE} failed to give ${what} (HTTP ${status})`);
}
