// What the AWS SDK threw, as a ProviderError: the error code Secrets Manager (or AWS's edge, a
// proxy, moto) answered decides the kind, then the HTTP status, then the shape of a failed
// connection. AWS's own message is kept only where it helps and cannot carry a credential (a
// denial names the principal and the action); a signature error's message can quote the
// canonical request, session token included, so auth errors give the code alone.
import { ProviderError, type ProviderErrorKind } from '../../src/providers/contract.ts';
import { abortError, isConnectionError, kindForStatus } from '../../src/providers/http-status.ts';
import { sanitize } from '../../src/providers/sanitize.ts';
import { OversizedResponse } from './responses.ts';

/**
 * Error codes by kind: Secrets Manager's documented codes, the IAM/STS codes AWS's edge (and
 * moto) use for the same failures, and the SDK's credential-loading errors.
 */
const KINDS: Record<string, ProviderErrorKind> = {
  ResourceNotFoundException: 'not_found',
  AccessDeniedException: 'denied',
  AccessDenied: 'denied',
  // The KMS key will not decrypt the value for these credentials (no kms:Decrypt, or the key is
  // disabled or pending deletion): fixed by a grant or by the key's owner, as `denied` is.
  DecryptionFailure: 'denied',
  UnrecognizedClientException: 'auth',
  InvalidClientTokenId: 'auth',
  InvalidSignatureException: 'auth',
  SignatureDoesNotMatch: 'auth',
  IncompleteSignature: 'auth',
  IncompleteSignatureException: 'auth',
  ExpiredTokenException: 'auth',
  ExpiredToken: 'auth',
  InvalidToken: 'auth',
  MissingAuthenticationToken: 'auth',
  MissingAuthenticationTokenException: 'auth',
  CredentialsProviderError: 'auth',
  TokenProviderError: 'auth',
  InternalServiceError: 'unavailable',
  InternalServiceErrorException: 'unavailable',
  InternalFailure: 'unavailable',
  ServiceUnavailable: 'unavailable',
  ServiceUnavailableException: 'unavailable',
  ThrottlingException: 'unavailable',
  Throttling: 'unavailable',
  TooManyRequestsException: 'unavailable',
  RequestLimitExceeded: 'unavailable',
  RequestTimeout: 'timeout',
  RequestTimeoutException: 'timeout',
  TimeoutError: 'timeout',
  InvalidParameterException: 'config',
  ValidationException: 'config',
};

/** The fields of an SDK error (a ServiceException, a CredentialsProviderError...) read here. */
interface SdkError {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  $metadata?: { httpStatusCode?: unknown };
}

export interface AwsErrorContext {
  /**
   * What was being done, for messages: "reading app/db from Secrets Manager in eu-west-1". It
   * never ends with the path: "app/db_password: ..." would read as a credential to the sanitiser.
   */
  doing: string;
  signal: AbortSignal;
  /** Credentials the provider holds, removed from any text by value. */
  known: readonly string[];
  /** The size limit of the call, for a refused oversized answer. */
  maxBytes?: number;
  /** The credential source being asked when the call gave up, if any (the metadata service...). */
  fetchingCredentials?: () => string | undefined;
}

/** `e`, whatever one SDK call threw, as the ProviderError DSO reports. */
export function awsError(e: unknown, ctx: AwsErrorContext): ProviderError {
  const at = (kind: ProviderErrorKind, what: string) => new ProviderError(kind, `${ctx.doing}: ${what}`);
  if (e instanceof ProviderError) return at(e.kind, e.message);
  if (e instanceof OversizedResponse) {
    const within = ctx.maxBytes === undefined ? 'too big for a list of secrets' : `too big to hold a value within the ${ctx.maxBytes}-byte limit`;
    return at('too_large', `${e.message}, ${within}; it was ${e.declared ? 'not read' : 'cut off there'}`);
  }
  // After the deadline the SDK throws an AbortError, or whatever the half-done request left.
  if (ctx.signal.aborted) {
    const aborted = abortError(ctx.signal, ctx.doing);
    // A call that hung on its credentials says where, not only that Secrets Manager was not read.
    const from = ctx.fetchingCredentials?.();
    return from === undefined ? aborted : new ProviderError(aborted.kind, `${aborted.message} while getting credentials from ${from}`);
  }

  const err = (typeof e === 'object' && e !== null ? e : { message: String(e) }) as SdkError;
  const code = typeof err.name === 'string' ? err.name : 'Error';
  const status = typeof err.$metadata?.httpStatusCode === 'number' ? err.$metadata.httpStatusCode : undefined;
  const where = status === undefined ? code : `${code}, HTTP ${status}`;
  const said = () => {
    const first = typeof err.message === 'string' ? err.message.split('\n')[0]!.trim() : '';
    const clean = sanitize(first, ctx.known).slice(0, 300);
    return clean && clean !== code ? `; AWS says "${clean}"` : '';
  };

  if (code === 'InvalidRequestException') {
    // For GetSecretValue AWS documents one cause: the secret is scheduled for deletion.
    if (/delet/i.test(typeof err.message === 'string' ? err.message : '')) {
      return at('not_found', `the secret is scheduled for deletion (${where}); restore it (aws secretsmanager restore-secret) to read it again`);
    }
    return at('invalid_response', `Secrets Manager refused the request (${where})${said()}`);
  }
  // The SDK's HTTP handler names a reset or refused connection TimeoutError (so that it is
  // retried); the call's own deadline has not passed (checked above): the backend cut it off.
  if (code === 'TimeoutError' && status === undefined && typeof err.code === 'string' && isConnectionError({ code: err.code })) {
    return at('unavailable', `the connection failed (${err.code})`);
  }
  const kind = Object.hasOwn(KINDS, code) ? KINDS[code] : undefined;
  switch (kind) {
    case undefined:
      break;
    case 'not_found':
      return at('not_found', `no such secret or version (${where})`);
    case 'denied':
      if (code === 'DecryptionFailure') return at('denied', `Secrets Manager cannot decrypt the value with its KMS key for these credentials; they need kms:Decrypt on an enabled key (${where})`);
      return at('denied', `these credentials may not read the secret (${where})${said()}`);
    case 'auth':
      // The SDK's own text says which source failed and why; no credential is in it.
      if (code === 'CredentialsProviderError' || code === 'TokenProviderError') return at('auth', `no usable AWS credentials${said()}`);
      return at('auth', `AWS rejected the credentials as unknown, wrong or expired (${where})`);
    case 'config':
      return at('config', `Secrets Manager refused the path or version (${where})${said()}`);
    default:
      return at(kind, `Secrets Manager failed (${where})`);
  }
  if (status === undefined && isConnectionError(e)) {
    return at('unavailable', `cannot connect (${typeof err.code === 'string' ? err.code : 'connection failed'})`);
  }
  if (status !== undefined) {
    // An answer that is not Secrets Manager's JSON (a proxy's page), or a code not listed above.
    const byStatus: ProviderErrorKind = status === 400 ? 'invalid_response' : kindForStatus(status);
    if (code === 'SyntaxError' || code === 'Error') return at(byStatus, `the server answered HTTP ${status}${code === 'SyntaxError' ? ', and not with Secrets Manager\'s JSON' : ''}`);
    return at(byStatus, `the server answered ${where}`);
  }
  return at('internal', `unexpected ${code}${said()}`);
}
