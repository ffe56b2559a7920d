// What Vault answered, as a ProviderError: its status and `{"errors":[...]}` body read once here,
// so that "sealed", "denied" or "login failed" mean the same for every call the provider makes.
// Vault's messages are kept (they say what is wrong) after sanitising; credentials the provider
// holds are removed by value.
import { ProviderError, type ProviderErrorKind } from '../../src/providers/contract.ts';
import { kindForStatus } from '../../src/providers/http-status.ts';
import { sanitize } from '../../src/providers/sanitize.ts';

/** A node-vault ApiResponseError, reduced to what DSO reads from it. */
export interface VaultAnswer {
  status: number;
  body: unknown;
  /** Vault's error strings, sanitised and shortened. */
  errors: string[];
}

/** The answer inside a node-vault rejection, or undefined when the request got no answer. */
export function vaultAnswer(e: unknown, known: Iterable<string> = []): VaultAnswer | undefined {
  const response = (e as { response?: { statusCode?: unknown; body?: unknown } })?.response;
  if (!response || typeof response.statusCode !== 'number') return undefined;
  const raw = (response.body as { errors?: unknown } | undefined)?.errors;
  const list = Array.isArray(raw) ? raw.filter((x): x is string => typeof x === 'string') : [];
  const knownList = [...known];
  return {
    status: response.statusCode,
    body: response.body,
    // Vault (go-multierror) packs several errors into one string with tabs and newlines.
    errors: list.map((m) => sanitize(m.replace(/\s+/g, ' ').trim(), knownList).slice(0, 300)).filter(Boolean),
  };
}

function said(answer: VaultAnswer): string {
  return answer.errors.length > 0 ? `${answer.errors.join('; ')} (HTTP ${answer.status})` : `HTTP ${answer.status}`;
}

export function isSealed(answer: VaultAnswer): boolean {
  return answer.status === 503 && answer.errors.some((m) => /vault is sealed/i.test(m));
}

/**
 * `e` (a node-vault rejection or a ProviderError from the transport) as a ProviderError about
 * `doing` ("reading app/db"). 403 becomes `denied`: callers that can tell an expired token from a
 * denied path (client.ts) do so before calling this.
 */
export function vaultError(e: unknown, doing: string, known: Iterable<string> = []): ProviderError {
  if (e instanceof ProviderError) return new ProviderError(e.kind, `${doing}: ${e.message}`);
  const answer = vaultAnswer(e, known);
  if (!answer) {
    // node-vault's own checks (tv4 argument validation) or a bug: never a Vault answer.
    return new ProviderError('internal', `${doing}: ${sanitize(e instanceof Error ? e.message : String(e), [...known]).slice(0, 300)}`);
  }
  if (isSealed(answer)) return new ProviderError('unavailable', `${doing}: Vault is sealed (HTTP 503); it answers again once it is unsealed`);
  if (answer.status >= 300 && answer.status < 400) {
    return new ProviderError('unavailable', `${doing}: Vault redirected the request (HTTP ${answer.status}), as a standby node does; set addr to the active node or to the load balancer in front of the cluster`);
  }
  const kind: ProviderErrorKind = answer.status === 400 ? 'invalid_response' : kindForStatus(answer.status);
  return new ProviderError(kind, `${doing}: ${said(answer)}`);
}

/** A failed login or token lookup: Vault's 400, 401, 403 and 404 all mean the credentials do not work. */
export function loginError(e: unknown, doing: string, known: Iterable<string>): ProviderError {
  if (e instanceof ProviderError) return new ProviderError(e.kind, `${doing}: ${e.message}`);
  const answer = vaultAnswer(e, known);
  if (answer && [400, 401, 403, 404].includes(answer.status)) return new ProviderError('auth', `${doing}: ${said(answer)}`);
  return vaultError(e, doing, known);
}
