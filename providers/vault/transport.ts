// The HTTP layer DSO hands node-vault in place of its own: Bun's fetch with the call's
// AbortSignal, a cap on the bytes read from an answer, TLS settings from dso.yaml only, and no
// redirects. node-vault 0.12's built-in axios layer forwards neither a signal nor a size limit
// (a slow Vault could not be abandoned, a huge answer would be read whole) and reads
// VAULT_SKIP_VERIFY from the environment; its `request-promise` option lets a client supply the
// request function instead, and everything else (paths, headers, logins, error bodies) stays
// node-vault's.
import { ProviderError } from '../../src/providers/contract.ts';
import { abortError, isConnectionError } from '../../src/providers/http-status.ts';
import { BodyOverLimit, readBodyCapped } from '../../src/providers/read-body.ts';

export interface VaultTls {
  /** PEM of the CA(s) to trust instead of the system's. */
  ca?: string;
  rejectUnauthorized: boolean;
  /** The name to send (SNI) and to verify the certificate against, when it differs from addr's host. */
  serverName?: string;
}

/** What DSO adds to node-vault's request options on every call. */
export interface CallOptions {
  headers: Record<string, string>;
  signal: AbortSignal;
  /** The most bytes of an answer DSO reads before refusing it as too large. */
  maxBodyBytes: number;
}

/** What node-vault passes to the request function: its own options plus DSO's CallOptions. */
interface RequestOptions extends Partial<CallOptions> {
  method: string;
  uri: string;
  json?: unknown;
}

/** The shape node-vault expects back (it came from the `request` library). */
export interface VaultHttpResponse {
  statusCode: number;
  body: unknown;
  request: { path: string };
}

/** For answers that carry no secret (logins, lookups, lists, errors). */
export const SMALL_ANSWER_BYTES = 1024 * 1024;

/**
 * The largest answer that can hold a value of `maxBytes`. The value DSO returns is
 * JSON.stringify(data.data); Vault (Go's encoding/json) writes the same object with `<`, `>`
 * and `&` as six-byte \u escapes, so its text can be up to six times longer, plus the envelope
 * (metadata, request id, warnings).
 */
export function answerLimit(maxBytes: number): number {
  return maxBytes * 6 + 64 * 1024;
}

/** node-vault's `request-promise` option: `defaults()` is called once and returns the request function. */
export function vaultTransport(tls: VaultTls | undefined): { defaults(ignored: unknown): (options: RequestOptions) => Promise<VaultHttpResponse> } {
  const request = async (options: RequestOptions): Promise<VaultHttpResponse> => {
    const signal = options.signal ?? AbortSignal.timeout(30_000);
    const limit = options.maxBodyBytes ?? SMALL_ANSWER_BYTES;
    const url = new URL(options.uri);
    const headers: Record<string, string> = { ...options.headers, 'X-Vault-Request': 'true' };
    if (options.json !== undefined) headers['Content-Type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(url, {
        method: options.method,
        headers,
        ...(options.json === undefined ? {} : { body: JSON.stringify(options.json) }),
        signal,
        // A standby node or a proxy may redirect; following it would send the token to wherever
        // the Location says. The error below names the fix instead.
        redirect: 'manual',
        ...(url.protocol === 'https:' && tls ? { tls: { ...(tls.ca === undefined ? {} : { ca: tls.ca }), rejectUnauthorized: tls.rejectUnauthorized, ...(tls.serverName === undefined ? {} : { serverName: tls.serverName }) } } : {}),
      } as RequestInit);
    } catch (e) {
      throw connectionFailure(e, signal, url);
    }
    const bytes = await readCapped(response, limit, signal);
    let body: unknown;
    if (bytes.length > 0) {
      try {
        // JSON.parse makes strings of everything, the secret's fields included; those copies
        // cannot be wiped (see docs/providers/vault.md). The raw bytes can, and are.
        body = JSON.parse(new TextDecoder().decode(bytes));
      } catch {
        body = undefined;
      }
      bytes.fill(0);
    }
    return { statusCode: response.status, body, request: { path: url.pathname } };
  };
  // node-vault passes its defaults (strictSSL from VAULT_SKIP_VERIFY...): dso.yaml decides instead.
  return { defaults: () => request };
}

/** The body, refused as soon as it is known to exceed `limit`: from Content-Length, or while reading. */
async function readCapped(response: Response, limit: number, signal: AbortSignal): Promise<Uint8Array> {
  try {
    return await readBodyCapped(response, limit);
  } catch (e) {
    if (e instanceof BodyOverLimit) {
      throw new ProviderError('too_large', e.declared === undefined ? `Vault's answer passed ${limit} bytes, more than a value within the size limit can take` : `Vault's answer is ${e.declared} bytes, more than a value within the size limit can take`);
    }
    throw connectionFailure(e, signal, new URL(response.url || 'http://vault'));
  }
}

const CERTIFICATE_CODES = /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|ERR_TLS_CERT_ALTNAME_INVALID|CERT_UNTRUSTED|CERT_SIGNATURE_FAILURE)$/;

/** A request that got no HTTP answer: aborted, refused, or a certificate DSO may not trust. */
function connectionFailure(e: unknown, signal: AbortSignal, url: URL): ProviderError {
  if (signal.aborted) return abortError(signal, `the request to Vault at ${url.origin}`);
  const code = String((e as { code?: unknown })?.code ?? '');
  if (CERTIFICATE_CODES.test(code)) {
    // Not transient: retrying will not make the certificate trusted.
    return new ProviderError('config', `the TLS certificate of ${url.origin} was not accepted (${code}): set tls.ca_cert to the CA that signed it, or tls.server_name to the name in it`);
  }
  if (isConnectionError(e)) return new ProviderError('unavailable', `cannot reach Vault at ${url.origin} (${code || 'connection failed'})`);
  return new ProviderError('unavailable', `the request to Vault at ${url.origin} failed (${code || (e instanceof Error ? e.name : 'error')})`);
}
