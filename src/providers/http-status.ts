// The one mapping from a backend's HTTP status, or a failed connection, to a provider error kind,
// shared by every provider so that "denied" or "unavailable" means the same thing everywhere.
import { ProviderError, type ProviderErrorKind } from './contract.ts';

export function kindForStatus(status: number): ProviderErrorKind {
  if (status === 401) return 'auth';
  if (status === 403) return 'denied';
  if (status === 404) return 'not_found';
  if (status === 408 || status === 429 || status >= 500) return 'unavailable';
  return 'invalid_response';
}

/** True for errors that mean the backend could not be reached (refused, reset, DNS, TLS). */
export function isConnectionError(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  if (typeof code === 'string' && /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|EPIPE|ETIMEDOUT|ConnectionRefused|ConnectionClosed|FailedToOpenSocket|UNABLE_TO_VERIFY_LEAF_SIGNATURE|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|CERT_HAS_EXPIRED|ERR_TLS_CERT_ALTNAME_INVALID)$/.test(code)) {
    return true;
  }
  const message = e instanceof Error ? e.message : String(e);
  return /ECONNREFUSED|ECONNRESET|Unable to connect|socket connection was closed|certificate|self.signed/i.test(message);
}

/** A ProviderError for an aborted call: `timeout` when the signal's reason says so. */
export function abortError(signal: AbortSignal, what: string): ProviderError {
  const reason = signal.reason as { name?: string } | undefined;
  return reason?.name === 'TimeoutError'
    ? new ProviderError('timeout', `${what} timed out`)
    : new ProviderError('unavailable', `${what} was cancelled`);
}
