// What DSO's own readers of AWS's local credential services (the EC2 instance metadata service,
// the ECS / EKS Pod Identity container credentials endpoint) share: one request read within a
// size limit and a timeout, the credentials document both services answer, and the credentials
// kept until shortly before they expire. The SDK's readers keep whatever a service sends, so an
// endless answer would fill the memory DSO shares with its Worker.
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { ProviderError } from '../../src/providers/contract.ts';
import { isConnectionError } from '../../src/providers/http-status.ts';
import { BodyOverLimit, readBodyCapped } from '../../src/providers/read-body.ts';

/** A role name, a token, a credentials document: a few KB at most. */
export const ANSWER_LIMIT = 64 * 1024;
/** Renewed this long before they expire (the SDK's chain also treats them as expired then). */
const RENEW_BEFORE_MS = 5 * 60_000;

export interface Answer {
  status: number;
  text: string;
}

/** One request to `source` (named in messages), its answer read within ANSWER_LIMIT and `timeoutMs`. */
export async function requestCapped(source: string, url: URL, method: string, headers: Record<string, string>, timeoutMs: number): Promise<Answer> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const response = await fetch(url, { method, headers, signal, redirect: 'manual' });
    const body = await readBodyCapped(response, ANSWER_LIMIT);
    const text = new TextDecoder().decode(body);
    body.fill(0);
    return { status: response.status, text };
  } catch (e) {
    if (e instanceof BodyOverLimit) throw new ProviderError('invalid_response', `${source} answered more than credentials ever take (over ${ANSWER_LIMIT} bytes)`);
    if (signal.aborted) throw new ProviderError('timeout', `${source} did not answer within ${timeoutMs} ms`);
    const code = (e as { code?: unknown })?.code;
    throw new ProviderError('unavailable', `cannot reach ${source} for credentials (${typeof code === 'string' && isConnectionError(e) ? code : 'the request failed'})`);
  }
}

/**
 * The documented credentials document (AccessKeyId, SecretAccessKey, Token, Expiration) both
 * services answer; anything else is `invalid_response`. Its strings stay with the GC, as the SDK's do.
 */
export function parseCredentialsDocument(source: string, text: string): AwsCredentialIdentity {
  const bad = new ProviderError('invalid_response', `${source} answered something that is not AWS credentials`);
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
  if (expiration.getTime() <= Date.now()) throw new ProviderError('auth', `${source} answered credentials that have already expired (check the clock)`);
  return { accessKeyId: AccessKeyId, secretAccessKey: SecretAccessKey, sessionToken: Token, expiration };
}

/**
 * `fetchCredentials` asked once for concurrent callers, its answer kept until it nears expiry
 * (credentials without an expiry, static keys, for good). The SDK's identity properties (the
 * calling client's configuration) are passed on.
 */
export function keptUntilExpiry(fetchCredentials: AwsCredentialIdentityProvider): AwsCredentialIdentityProvider {
  let held: AwsCredentialIdentity | undefined;
  let inflight: Promise<AwsCredentialIdentity> | undefined;
  return async (properties) => {
    if (held && (held.expiration === undefined || held.expiration.getTime() - Date.now() > RENEW_BEFORE_MS)) return held;
    inflight ??= fetchCredentials(properties).finally(() => {
      inflight = undefined;
    });
    held = await inflight;
    return held;
  };
}

/**
 * `request` tried once more (as the SDK retries these services) when it failed on the way or the
 * service answered 5xx: a local service that blinked. More would only run into DSO's deadline.
 */
export async function withOneRetry(request: () => Promise<Answer>): Promise<Answer> {
  for (let attempt = 0; ; attempt++) {
    try {
      const answer = await request();
      if (attempt === 0 && answer.status >= 500) continue;
      return answer;
    } catch (e) {
      if (attempt === 0 && e instanceof ProviderError && e.transient) continue;
      throw e;
    }
  }
}
