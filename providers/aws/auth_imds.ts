// The EC2 instance profile's credentials from the instance metadata service, as the SDK's
// fromInstanceMetadata gets them (IMDSv2 session token, falling back to v1 when the token request
// times out or is refused, unless AWS_EC2_METADATA_V1_DISABLED), but with every answer read
// within a size limit: the SDK's reader keeps whatever the service sends, so an endless answer
// would fill the memory DSO shares with its Worker.
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { ProviderError } from '../../src/providers/contract.ts';
import { isConnectionError } from '../../src/providers/http-status.ts';
import { BodyOverLimit, readBodyCapped } from '../../src/providers/read-body.ts';

const SOURCE = 'the instance metadata service';
const TOKEN_PATH = '/latest/api/token';
const ROLE_PATH = '/latest/meta-data/iam/security-credentials/';
const TOKEN_TTL_SECONDS = 21_600;
/** A role name, a token, a credentials document: a few KB at most. */
const LIMIT = 64 * 1024;
/** Renewed this long before they expire. */
const RENEW_BEFORE_MS = 5 * 60_000;
const ROLE_NAME = /^[\w+=,.@-]{1,128}$/;

interface Answer {
  status: number;
  text: string;
}

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
  let held: AwsCredentialIdentity | undefined;
  let inflight: Promise<AwsCredentialIdentity> | undefined;

  const request = async (method: string, path: string, headers: Record<string, string>): Promise<Answer> => {
    // One retry, as the SDK's maxRetries: 1, for a request that failed or timed out or an answer 5xx.
    for (let attempt = 0; ; attempt++) {
      try {
        const answer = await requestOnce(new URL(path, base), method, headers, timeoutMs);
        if (attempt === 0 && answer.status >= 500) continue;
        return answer;
      } catch (e) {
        if (attempt === 0 && e instanceof ProviderError && e.transient) continue;
        throw e;
      }
    }
  };

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
    return parseCredentials(answer.text);
  };

  return async () => {
    if (held?.expiration && held.expiration.getTime() - Date.now() > RENEW_BEFORE_MS) return held;
    inflight ??= fetchCredentials().finally(() => {
      inflight = undefined;
    });
    held = await inflight;
    return held;
  };
}

async function requestOnce(url: URL, method: string, headers: Record<string, string>, timeoutMs: number): Promise<Answer> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const response = await fetch(url, { method, headers, signal, redirect: 'manual' });
    const body = await readBodyCapped(response, LIMIT);
    const text = new TextDecoder().decode(body);
    body.fill(0);
    return { status: response.status, text };
  } catch (e) {
    if (e instanceof BodyOverLimit) throw new ProviderError('invalid_response', `${SOURCE} answered more than credentials ever take (over ${LIMIT} bytes)`);
    if (signal.aborted) throw new ProviderError('timeout', `${SOURCE} did not answer within ${timeoutMs} ms`);
    const code = (e as { code?: unknown })?.code;
    throw new ProviderError('unavailable', `cannot reach ${SOURCE} for credentials (${typeof code === 'string' && isConnectionError(e) ? code : 'the request failed'})`);
  }
}

function failed(status: number, what: string): ProviderError {
  // 404: no role attached to the instance; 401/403: the token was refused or the service is off.
  if (status === 401 || status === 403 || status === 404) return new ProviderError('auth', `${SOURCE} gave no ${what} (HTTP ${status}): is an instance profile attached?`);
  return new ProviderError(status >= 500 || status === 429 ? 'unavailable' : 'invalid_response', `${SOURCE} failed to give ${what} (HTTP ${status})`);
}

/** The documented credentials document; its strings stay with the GC, as the SDK's do. */
function parseCredentials(text: string): AwsCredentialIdentity {
  const bad = new ProviderError('invalid_response', `${SOURCE} answered something that is not AWS credentials`);
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw bad;
  }
  const { AccessKeyId, SecretAccessKey, Token, Expiration } = doc ?? {};
  const expiration = typeof Expiration === 'string' ? new Date(Expiration) : undefined;
  if (typeof AccessKeyId !== 'string' || AccessKeyId === '' || typeof SecretAccessKey !== 'string' || SecretAccessKey === '' || typeof Token !== 'string' || !expiration || Number.isNaN(expiration.getTime())) {
    throw bad;
  }
  if (expiration.getTime() <= Date.now()) throw new ProviderError('auth', `${SOURCE} answered credentials that have already expired (check the instance clock)`);
  return { accessKeyId: AccessKeyId, secretAccessKey: SecretAccessKey, sessionToken: Token, expiration };
}
