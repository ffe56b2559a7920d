// One HTTP exchange with a size limit on the answer, for CSMS and the ECS metadata service: the
// body is refused from its Content-Length when that is over the limit, and reading stops as soon
// as the bytes received pass it. Failures to connect and aborts become ProviderErrors here.
import { ProviderError } from '../../src/providers/contract.ts';
import { abortError, isConnectionError } from '../../src/providers/http-status.ts';
import { BodyOverLimit, readBodyCapped } from '../../src/providers/read-body.ts';

export interface Exchange {
  status: number;
  headers: Headers;
  /** The whole body, in a buffer the caller owns (and zeroes when it held a secret). */
  body: Uint8Array;
}

export interface ExchangeOptions {
  signal: AbortSignal;
  /** The most body bytes accepted. */
  limit: number;
  /** PEM CA certificates to trust instead of the system's. */
  ca?: string;
  /** What is being done, for messages: "reading secret db (version latest) from CSMS". */
  what: string;
}

/** The body is over `limit`: a too_large ProviderError, saying the declared size when there was one. */
export class BodyTooLarge extends ProviderError {
  constructor(what: string, limit: number, declared?: number) {
    super('too_large', `${what}: the answer is ${declared === undefined ? 'over' : `${declared} bytes, over`} the ${limit}-byte limit`);
  }
}

export async function exchange(url: URL, init: { method: string; headers: Record<string, string> }, o: ExchangeOptions): Promise<Exchange> {
  let response: Response;
  try {
    response = await fetch(url, {
      method: init.method,
      headers: init.headers,
      signal: o.signal,
      redirect: 'manual',
      ...(o.ca === undefined ? {} : { tls: { ca: o.ca } }),
    } as RequestInit);
  } catch (e) {
    throw failure(e, o);
  }
  try {
    return { status: response.status, headers: response.headers, body: await readBodyCapped(response, o.limit) };
  } catch (e) {
    if (e instanceof BodyOverLimit) throw new BodyTooLarge(o.what, o.limit, e.declared);
    throw failure(e, o);
  }
}

function failure(e: unknown, o: ExchangeOptions): ProviderError {
  if (o.signal.aborted) return abortError(o.signal, o.what);
  if (isConnectionError(e)) return new ProviderError('unavailable', `${o.what}: could not connect (${describe(e)})`);
  return new ProviderError('unavailable', `${o.what}: the request failed (${describe(e)})`);
}

/** A connection error's code or name, not its message (which can quote the URL). */
function describe(e: unknown): string {
  const code = (e as { code?: unknown })?.code;
  if (typeof code === 'string' && /^[A-Za-z_]{1,40}$/.test(code)) return code;
  return e instanceof Error ? e.name : 'error';
}
