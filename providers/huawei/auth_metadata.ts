// `auth: { method: metadata }`: the temporary AK/SK and security token of the agency attached to
// this ECS instance, from the instance metadata service, the way Huawei's Go SDK gets them:
// a session token first (PUT /meta-data/latest/api/token; a 404 or 405 means the service does not
// require one), then GET /openstack/latest/securitykey. Kept until 5 minutes before they expire.
import { ProviderError } from '../../src/providers/contract.ts';
import { abortError, kindForStatus } from '../../src/providers/http-status.ts';
import { DEFAULT_METADATA_ENDPOINT, type MetadataAuth } from './config.ts';
import { keyBytes, redactionsOf, type CredentialSource } from './credentials.ts';
import { exchange } from './http.ts';
import type { SigningCredentials } from './signer.ts';
import { untilAborted } from '../../src/abortable.ts';

const TOKEN_PATH = '/meta-data/latest/api/token';
const SECURITY_KEY_PATH = '/openstack/latest/securitykey';
const TOKEN_TTL_SECONDS = 6 * 60 * 60;
/** The metadata service says this when no agency is attached to the instance. */
const NO_AGENCY = 'Please configure Cloud Service Agency first';
/** Renew this long before expiry: the SDK's 60 s leaves no room for a slow call or clock skew. */
const RENEW_BEFORE_MS = 5 * 60_000;
/** A fetch shared by concurrent calls gets its own deadline, not one caller's. */
const FETCH_TIMEOUT_MS = 10_000;
const LIMIT = 64 * 1024;

interface Held extends SigningCredentials {
  expiresAt: number;
}

export function metadataCredentials(auth: MetadataAuth, now: () => number = Date.now): CredentialSource {
  const base = auth.endpoint ?? DEFAULT_METADATA_ENDPOINT;
  // undefined: not asked yet; null: the service has no token API (asked again only after a 401).
  let sessionToken: string | null | undefined;
  let current: Held | undefined;
  // Replaced credentials are zeroed one replacement later: a call may still be signing with them.
  let retired: Held | undefined;
  let inflight: Promise<Held> | undefined;

  const replace = (next: Held | undefined) => {
    retired?.secretKey.fill(0);
    retired = current;
    current = next;
  };

  const fetchCredentials = async (): Promise<Held> => {
    const signal = AbortSignal.timeout(FETCH_TIMEOUT_MS);
    if (sessionToken === undefined) sessionToken = (await requestSessionToken(base, signal, false)) ?? null;
    let answer = await requestSecurityKey(base, sessionToken ?? undefined, signal);
    if (answer.status === 401 && !answer.text.includes(NO_AGENCY)) {
      // The session token expired (or is now required): get one and ask again, as the SDK does.
      sessionToken = await requestSessionToken(base, signal, true);
      answer = await requestSecurityKey(base, sessionToken, signal);
    }
    if (answer.status !== 200) {
      if (answer.text.includes(NO_AGENCY)) throw new ProviderError('auth', 'the ECS metadata service has no credentials: attach an agency that may read CSMS secrets to this instance');
      throw new ProviderError(answer.status === 401 || answer.status === 403 ? 'auth' : kindForStatus(answer.status), `getting temporary credentials from the ECS metadata service failed (HTTP ${answer.status})`);
    }
    return parseSecurityKey(answer.text, now());
  };

  return {
    async get(signal) {
      if (current && current.expiresAt - now() > RENEW_BEFORE_MS) return current;
      inflight ??= fetchCredentials().finally(() => {
        inflight = undefined;
      });
      let fresh: Held;
      try {
        fresh = await untilAborted(inflight, signal, () => abortError(signal, 'getting temporary credentials from the ECS metadata service'));
      } catch (e) {
        // Renewal failed while the held credentials still work: use them, try again next call.
        if (current && current.expiresAt - now() > 30_000 && !signal.aborted) return current;
        throw e;
      }
      if (current !== fresh) replace(fresh);
      return fresh;
    },
    refused() {
      // Agency credentials rotate; CSMS refusing them can mean they just did.
      if (current) replace(undefined);
      return true;
    },
    redactions: () => redactionsOf(current, retired),
    close() {
      retired?.secretKey.fill(0);
      current?.secretKey.fill(0);
      retired = current = undefined;
    },
  };
}

async function requestSessionToken(base: string, signal: AbortSignal, required: boolean): Promise<string | undefined> {
  const answer = await exchange(new URL(TOKEN_PATH, base), { method: 'PUT', headers: { 'X-Metadata-Token-Ttl-Seconds': String(TOKEN_TTL_SECONDS) } }, { signal, limit: LIMIT, what: 'getting a session token from the ECS metadata service' });
  const text = new TextDecoder().decode(answer.body).trim();
  if (answer.status === 200 && text !== '') return text;
  // No token API: the service answers security keys without one.
  if ((answer.status === 404 || answer.status === 405) && !required) return undefined;
  throw new ProviderError(answer.status === 401 || answer.status === 403 ? 'auth' : 'unavailable', `getting a session token from the ECS metadata service failed (HTTP ${answer.status})`);
}

async function requestSecurityKey(base: string, sessionToken: string | undefined, signal: AbortSignal): Promise<{ status: number; text: string }> {
  const answer = await exchange(new URL(SECURITY_KEY_PATH, base), { method: 'GET', headers: sessionToken === undefined ? {} : { 'X-Metadata-Token': sessionToken } }, { signal, limit: LIMIT, what: 'getting temporary credentials from the ECS metadata service' });
  const text = new TextDecoder().decode(answer.body);
  answer.body.fill(0);
  return { status: answer.status, text };
}

/** `{"credential": {"access", "secret", "securitytoken", "expires_at"}}`; the JSON's strings stay with the GC. */
function parseSecurityKey(text: string, now: number): Held {
  const bad = (why: string) => new ProviderError('invalid_response', `the ECS metadata service answered credentials that are not usable: ${why}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw bad('not JSON');
  }
  const c = (parsed as { credential?: Record<string, unknown> } | null)?.credential;
  if (typeof c !== 'object' || c === null) throw bad('no credential object');
  const { access, secret, securitytoken, expires_at } = c;
  if (typeof access !== 'string' || !/^[A-Za-z0-9]{1,128}$/.test(access)) throw bad('no valid access');
  if (typeof secret !== 'string' || secret === '') throw bad('no secret');
  if (typeof securitytoken !== 'string' || securitytoken === '') throw bad('no securitytoken');
  const expiresAt = typeof expires_at === 'string' ? parseExpiry(expires_at) : undefined;
  if (expiresAt === undefined) throw bad('no valid expires_at');
  if (expiresAt <= now) throw new ProviderError('auth', 'the ECS metadata service answered credentials that have already expired (check the instance clock)');
  return { accessKey: access, secretKey: keyBytes(secret), securityToken: securitytoken, expiresAt };
}

/** ISO 8601 in UTC with any number of fractional digits (the service gives microseconds). */
function parseExpiry(text: string): number | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?Z$/.exec(text);
  if (!m) return undefined;
  const ms = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'));
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]), ms);
}

