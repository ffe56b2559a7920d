// The Azure SDK's HTTP client, on Bun's fetch, for vaults behind a private CA: fetch takes the CA
// per request (`tls.ca`), where Node's https module under Bun only learns extra CAs from
// NODE_EXTRA_CA_CERTS when the process starts. With it, one provider trusts its own CA without
// a process of its own, and the same client serves Key Vault and Entra ID logins.
import { createHttpHeaders, RestError, type HttpClient, type PipelineRequest, type PipelineResponse } from '@azure/core-rest-pipeline';
import { rootCertificates } from 'node:tls';
import { proxyFor, type ProxySettings } from './proxy.ts';
import { BodyOverLimit, readBodyCapped } from '../../src/providers/read-body.ts';

/**
 * Key Vault's largest answer is a 25 KB secret escaped inside JSON, or a page of 25 names; a
 * login answer is a few KB. Anything bigger is not what these APIs send, and is not read.
 */
const MAX_RESPONSE_BYTES = 1 << 20;

export interface FetchHttpClientOptions {
  /** PEM certificates trusted in addition to the system's roots. */
  ca: string;
  /** The proxies of the provider's environment (see proxy.ts). */
  proxy: ProxySettings;
}

export function createFetchHttpClient(options: FetchHttpClientOptions): HttpClient {
  // Bun's `tls.ca`, like Node's, replaces the default roots: keep them, so that a private CA for
  // the vault does not cut DSO off from login.microsoftonline.com.
  const ca = [...rootCertificates, options.ca];
  return {
    async sendRequest(request: PipelineRequest): Promise<PipelineResponse> {
      const controller = new AbortController();
      const abort = () => controller.abort(request.abortSignal && 'reason' in request.abortSignal ? (request.abortSignal as AbortSignal).reason : undefined);
      if (request.abortSignal?.aborted) abort();
      request.abortSignal?.addEventListener('abort', abort);
      const timer = request.timeout > 0 ? setTimeout(() => controller.abort(new DOMException('the request timed out', 'TimeoutError')), request.timeout) : undefined;
      try {
        let response: Response;
        const proxy = proxyFor(new URL(request.url), options.proxy);
        try {
          response = await fetch(request.url, {
            method: request.method,
            headers: [...request.headers].map(([k, val]) => [k, val] as [string, string]),
            body: requestBody(request),
            signal: controller.signal,
            // The pipeline's redirect policy decides; fetch must not follow on its own.
            redirect: 'manual',
            ...(request.disableKeepAlive ? { keepalive: false } : {}),
            tls: { ca },
            ...(proxy === undefined ? {} : { proxy }),
          } as RequestInit);
        } catch (e) {
          throw sendError(e, request, controller.signal);
        }
        const headers = createHttpHeaders();
        response.headers.forEach((val, key) => headers.set(key, val));
        const bodyAsText = await readText(response, request, controller.signal);
        return { request, status: response.status, headers, bodyAsText };
      } finally {
        if (timer) clearTimeout(timer);
        request.abortSignal?.removeEventListener('abort', abort);
      }
    },
  };
}

function requestBody(request: PipelineRequest): RequestInit['body'] {
  const body = request.body;
  if (body === undefined || body === null) {
    if (request.formData) {
      const form = new URLSearchParams();
      for (const [k, val] of Object.entries(request.formData)) for (const one of [val].flat()) form.append(k, String(one));
      return form;
    }
    return undefined;
  }
  if (typeof body === 'string' || body instanceof ArrayBuffer || ArrayBuffer.isView(body) || body instanceof Blob) return body as RequestInit['body'];
  // Key Vault reads and Entra ID logins send strings; streams and multipart are not used here.
  throw new RestError('this HTTP client does not send streamed or multipart bodies', { code: 'REQUEST_SEND_ERROR', request });
}

/** The body as text, refusing more than MAX_RESPONSE_BYTES; the bytes read are wiped after decoding. */
async function readText(response: Response, request: PipelineRequest, signal: AbortSignal): Promise<string | null> {
  if (!response.body) return null;
  let all: Uint8Array;
  try {
    all = await readBodyCapped(response, MAX_RESPONSE_BYTES);
  } catch (e) {
    if (e instanceof BodyOverLimit) {
      throw new RestError(e.declared === undefined ? 'the response is larger than this API ever sends' : `the response is ${e.declared} bytes, more than this API ever sends`, { code: 'RESPONSE_TOO_LARGE', statusCode: response.status, request });
    }
    throw sendError(e, request, signal);
  }
  // The SDK wants text: from here on a copy of the body (and of a secret value in it) is a
  // JavaScript string, which cannot be wiped. The bytes at least are.
  const text = new TextDecoder().decode(all);
  all.fill(0);
  return text;
}

/** An abort stays an AbortError (the pipeline does not retry it); anything else is a send error. */
function sendError(e: unknown, request: PipelineRequest, signal: AbortSignal): Error {
  if (signal.aborted) {
    const abortError = new Error('the request was aborted');
    abortError.name = 'AbortError';
    return abortError;
  }
  // As the SDK's own Node client does: the system code (ECONNREFUSED, ECONNRESET...) when there is
  // one, so that the retry policy retries what it knows to be transient.
  const code = (e as { code?: unknown })?.code;
  return new RestError(e instanceof Error ? e.message : String(e), { code: typeof code === 'string' ? code : RestError.REQUEST_SEND_ERROR, request });
}
