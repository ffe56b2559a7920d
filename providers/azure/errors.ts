// Turning what the Azure SDK throws (Key Vault's RestError, the identity library's credential
// errors, aborts, network failures) into a ProviderError of the right kind, with a message that
// names the secret and the cause and holds no token, credential or value.
import { ProviderError } from '../../src/providers/contract.ts';
import { abortError, isConnectionError, kindForStatus } from '../../src/providers/http-status.ts';
import { sanitize } from '../../src/providers/sanitize.ts';
import type { LastAnswer } from './recording-client.ts';

interface SdkError {
  name?: string;
  message?: string;
  code?: string;
  statusCode?: number;
  details?: { error?: { code?: string; message?: string; innererror?: { code?: string } } };
  errorResponse?: { error?: string; errorDescription?: string };
  errors?: unknown[];
  cause?: unknown;
}

export interface ErrorContext {
  /** Credential values the provider holds: no message may carry them, even if a backend echoes them. */
  known: readonly string[];
  /** Why the last request to the login host could not be sent, if it could not. */
  loginFailure?: () => string | undefined;
  /** The last answer of the login host. */
  loginAnswer?: () => LastAnswer | undefined;
  /** Whether a login was under way (a call that timed out then was waiting for Entra ID). */
  loggingIn?: () => boolean;
  /** The login service when it is not Entra ID (the managed identity endpoint), for messages. */
  loginService?: string;
}

/** `what` says what was being done ("reading secret db-password from NAME.vault.azure.net"). */
export function toProviderError(e: unknown, what: string, signal: AbortSignal | undefined, context: ErrorContext): ProviderError {
  if (e instanceof ProviderError) return e;
  if (signal?.aborted) {
    const aborted = abortError(signal, what);
    const login = context.loginService === undefined ? 'while logging in to Entra ID' : `while getting a token from ${context.loginService}`;
    return new ProviderError(aborted.kind, `${aborted.message} ${context.loggingIn?.() ? login : 'waiting for Key Vault'}`);
  }
  const err = (typeof e === 'object' && e !== null ? e : {}) as SdkError;
  const clean = (text: string) => sanitize(firstLine(text), context.known);

  switch (err.name) {
    case 'AbortError':
      return new ProviderError('unavailable', `${what} was cancelled`);
    case 'AggregateAuthenticationError': {
      // `method: default` tried several credentials: report each.
      const parts = (err.errors ?? []).map((x) => toProviderError(x, 'login', signal, context));
      const kind = parts.length > 0 && parts.every((p) => p.kind === 'unavailable') ? 'unavailable' : 'auth';
      return new ProviderError(kind, `${what}: no Azure credential worked (${parts.map((p) => p.message).join('; ').slice(0, 400)})`);
    }
    case 'AuthenticationRequiredError':
    case 'CredentialUnavailableError':
    case 'AuthenticationError':
      return fromLoginError(err, what, clean, context);
    case 'RestError':
      return fromRestError(err, what, clean);
  }
  if (isConnectionError(e) || networkCause(err)) return new ProviderError('unavailable', `${what}: ${clean(err.message ?? String(e))}`);
  return new ProviderError('internal', `${what}: ${clean(e instanceof Error ? e.message : String(e))}`);
}

/**
 * The identity library wraps MSAL's errors: a refusal from Entra ID comes as
 * "invalid_client: Error(s): 7000215 - ... Description: AADSTS7000215: Invalid client secret...",
 * a failed connection as "network_error: ...", a managed identity failure as
 * "ManagedIdentityCredential: ...".
 */
function fromLoginError(err: SdkError, what: string, clean: (s: string) => string, context: ErrorContext): ProviderError {
  const message = err.message ?? '';
  const status = err.statusCode ?? 0;
  const msalCode = err.errorResponse?.error ?? /^([a-z_]+):/.exec(message)?.[1];
  const failure = context.loginFailure?.();
  // An answer that was there but useless: a 5xx page, or a 2xx that is not JSON or too big.
  const answer = failure === undefined ? context.loginAnswer?.() : undefined;
  const answerFailed = answer !== undefined && (answer.status >= 500 || answer.status === 429);
  const answerGarbage = answer !== undefined && answer.status < 300 && answer.unreadable !== undefined;
  const service = context.loginService ?? 'the login service';
  if (msalCode === 'network_error' || networkCause(err) || status >= 500 || status === 429) {
    // MSAL calls an answer it cannot parse a network error too.
    if (answerGarbage) return new ProviderError('invalid_response', `${what}: ${service} answered HTTP ${answer.status}, ${answer.unreadable}, not ${context.loginService === undefined ? "Entra ID's JSON" : 'a token'}`);
    return new ProviderError('unavailable', `${what}: ${service} could not be reached or failed${failure ? ` (${clean(failure)})` : status ? ` (HTTP ${status})` : answerFailed ? ` (HTTP ${answer.status})` : ''}`);
  }
  if (msalCode === 'endpoints_resolution_error') {
    if (failure) return new ProviderError('unavailable', `${what}: Entra ID could not be reached (${clean(failure)})`);
    if (answerFailed) return new ProviderError('unavailable', `${what}: Entra ID failed to give its OpenID configuration (HTTP ${answer.status})`);
    // Entra ID answers an unknown tenant with an error (HTTP 400); a success that MSAL cannot
    // use is not Entra ID speaking.
    if (answer !== undefined && answer.status < 300) {
      return new ProviderError('invalid_response', `${what}: the login service answered HTTP ${answer.status}${answer.unreadable ? `, ${answer.unreadable},` : ''} with no usable OpenID configuration`);
    }
    return new ProviderError('auth', `${what}: Entra ID has no OpenID configuration for this tenant at the authority host: check tenant_id and authority_host`);
  }
  const otherTenant = /not configured to acquire tokens for tenant (\S+?)\.(?:\s|$)/.exec(message)?.[1];
  if (otherTenant !== undefined) {
    return new ProviderError('auth', `${what}: the vault belongs to tenant ${otherTenant}, not to the tenant_id DSO logs in to; fix tenant_id`);
  }
  // A managed identity endpoint that answered success and still gave no token answered garbage
  // (MSAL fails on a wrong shape with a TypeError of its own); it has no other input to blame.
  if (context.loginService !== undefined && answer !== undefined && answer.status < 300) {
    return new ProviderError('invalid_response', `${what}: ${service} answered HTTP ${answer.status}${answer.unreadable ? `, ${answer.unreadable},` : ''} with no usable token`);
  }
  // MSAL's server errors read "code: Error(s): ... - Description: what happened - Correlation ID: ...".
  const description = err.errorResponse?.errorDescription ?? /Description: (.*?)(?: - Correlation ID:| - Trace ID:|$)/m.exec(message)?.[1];
  if (description !== undefined && /^AADSTS\d+/.test(description)) {
    return new ProviderError('auth', `${what}: Entra ID refused the login (${msalCode ?? 'error'}${status ? `, HTTP ${status}` : ''}): ${clean(description)}`);
  }
  if (description !== undefined) return new ProviderError('auth', `${what}: the login was refused: ${clean(description)}`);
  // "ManagedIdentityCredential: Authentication failed..." reads like a key and its value to the
  // sanitiser, which would hide the part that says what happened.
  return new ProviderError('auth', `${what}: login failed: ${clean(message.replace(/^\w+Credential: /, ''))}`);
}

function fromRestError(err: SdkError, what: string, clean: (s: string) => string): ProviderError {
  const status = err.statusCode;
  if (status === undefined) {
    if (err.code === 'RESPONSE_TOO_LARGE') return new ProviderError('invalid_response', `${what}: ${clean(err.message ?? '')}`);
    const code = err.code && err.code !== 'REQUEST_SEND_ERROR' && !(err.message ?? '').startsWith(err.code) ? ` (${err.code})` : '';
    return new ProviderError('unavailable', `${what}: the vault could not be reached${code}: ${clean(err.message ?? '')}`);
  }
  const code = err.details?.error?.code ?? err.code;
  const inner = err.details?.error?.innererror?.code;
  const tag = `HTTP ${status}${code ? `, ${code}` : ''}${inner ? `/${inner}` : ''}`;
  if (status === 403 && (inner === 'SecretDisabled' || /disabled secret/i.test(err.message ?? ''))) {
    return new ProviderError('denied', `${what}: the secret is disabled in Key Vault; enable it, or pin an enabled version with ?version= (${tag})`);
  }
  switch (status) {
    case 401:
      return new ProviderError('auth', `${what}: Key Vault did not accept DSO's token (${tag}): ${clean(err.message ?? '')}`);
    case 403:
      return new ProviderError('denied', `${what}: DSO's identity may not read it; grant it the Key Vault Secrets User role or a get/list access policy (${tag})`);
    case 404:
      return new ProviderError('not_found', `${what}: no such secret or version in the vault (${tag})`);
  }
  const kind = kindForStatus(status);
  return new ProviderError(kind, `${what}: Key Vault answered ${tag}${kind === 'invalid_response' ? `: ${clean(err.message ?? '')}` : ''}`);
}

/**
 * Whether a failed send is behind `err`. Only codes are trusted, not words in messages: Entra ID's
 * own refusals talk about certificates too ("AADSTS700027 ... certificate").
 */
function networkCause(err: SdkError): boolean {
  for (let c: unknown = err, depth = 0; c && depth < 5; c = (c as SdkError).cause, depth++) {
    const x = c as SdkError & { errorCode?: string };
    if (x.name === 'RestError' && x.statusCode === undefined && x.code !== 'RESPONSE_TOO_LARGE') return true;
    if (typeof x.code === 'string' && isConnectionError({ code: x.code })) return true;
    if (x.errorCode === 'network_error') return true;
  }
  // MSAL's network failure, and the managed identity credential's wrapping of it.
  return /^network_error\b|Network unreachable/.test(err.message ?? '');
}

/** The first line, at most 300 characters: service messages carry trace ids and stack-like detail after it. */
function firstLine(text: string): string {
  const line = text.split(/\r?\n/)[0] ?? '';
  return line.length > 300 ? `${line.slice(0, 300)}...` : line;
}
