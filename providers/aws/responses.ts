// A check on Secrets Manager's raw HTTP answer, before the SDK parses it. An error answer that is
// not the JSON AWS documents (AWS's edge and moto's IAM layer answer XML, a proxy HTML) would
// reach us as a JSON syntax error; its code is read from the body instead. And an answer too big
// to hold a value under DSO's size limit is refused unread, or cut off where it passes the limit
// when it did not say its size (an endless body would otherwise fill memory: the SDK reads a
// whole answer before parsing it).
import { Readable } from 'node:stream';
import type { AbsoluteLocation, DeserializeHandlerOptions, DeserializeMiddleware } from '@smithy/types';

/** The raw answer, as the SDK's HTTP handler gives it to the deserializer. */
interface RawResponse {
  statusCode: number;
  headers: Record<string, string | undefined>;
  body?: unknown;
}

/** JSON escapes a byte as at most 6 characters (\u001f); base64 takes 4 per 3 bytes. */
const WORST_ENCODING_RATIO = 6;
/** ARN, name, version id, up to 20 staging labels, dates: generously. */
const METADATA_ALLOWANCE = 64 * 1024;
/** An error page is read this far for its code, no further. */
const ERROR_BODY_LIMIT = 64 * 1024;
/** A page of ListSecrets (100 entries of metadata) is far smaller. */
const LIST_BODY_LIMIT = 4 * 1024 * 1024;

/** An error shaped like the SDK's service exceptions, so that errors.ts and the retry logic read it alike. */
export class NonJsonErrorResponse extends Error {
  readonly $metadata: { httpStatusCode: number };

  /** `message`: the body's <Message>, when it has one (errors.ts sanitises what it shows). */
  constructor(code: string | undefined, status: number, message: string | undefined) {
    super(message ?? (code ? `${code} (HTTP ${status})` : `HTTP ${status}`));
    this.name = code ?? 'Error';
    this.$metadata = { httpStatusCode: status };
  }
}

/** Refusal of an answer that cannot hold a value of at most `maxBytes` bytes. */
export class OversizedResponse extends Error {
  /** `declared`: `length` is the Content-Length; else the bytes read before reading stopped. */
  constructor(
    readonly length: number,
    readonly declared = true,
  ) {
    super(`the answer is ${declared ? '' : 'over '}${length} bytes`);
    this.name = 'OversizedResponse';
  }
}

function header(r: RawResponse, name: string): string {
  for (const [k, value] of Object.entries(r.headers ?? {})) if (k.toLowerCase() === name) return value ?? '';
  return '';
}

/** At most `limit` bytes of a body stream (Node Readable or web ReadableStream), as text. */
async function readSome(body: unknown, limit: number): Promise<string> {
  if (typeof body === 'string') return body.slice(0, limit);
  if (body instanceof Uint8Array) return new TextDecoder().decode(body.subarray(0, limit));
  if (!body || typeof (body as AsyncIterable<unknown>)[Symbol.asyncIterator] !== 'function') return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Uint8Array | string>) {
    const bytes = typeof chunk === 'string' ? new TextEncoder().encode(chunk) : chunk;
    chunks.push(bytes);
    size += bytes.length;
    if (size >= limit) break;
  }
  discard(body);
  return new TextDecoder().decode(Buffer.concat(chunks).subarray(0, limit));
}

/** Drops the rest of a body we will not read, so its connection is not left waiting. */
function discard(body: unknown): void {
  const b = body as { destroy?: () => void; cancel?: () => Promise<void> };
  try {
    if (typeof b?.destroy === 'function') b.destroy();
    else if (typeof b?.cancel === 'function') void b.cancel().catch(() => {});
  } catch {}
}

/** `body`, failing with OversizedResponse as soon as more than `limit` bytes have come. */
function capped(body: unknown, limit: number): unknown {
  if (!body || typeof (body as AsyncIterable<unknown>)[Symbol.asyncIterator] !== 'function') return body;
  return Readable.from(
    (async function* () {
      let size = 0;
      for await (const chunk of body as AsyncIterable<Uint8Array | string>) {
        size += chunk.length;
        if (size > limit) {
          discard(body);
          throw new OversizedResponse(size, false);
        }
        yield chunk;
      }
    })(),
    { objectMode: false },
  );
}

/**
 * The middleware for one call: `maxBytes` is the largest value DSO accepts (undefined: no size
 * check, as for listing). Added at the deserialize step with low priority, it runs between the
 * HTTP handler and the SDK's deserializer.
 */
export function responseCheck<Input extends object, Output extends object>(maxBytes: number | undefined): DeserializeMiddleware<Input, Output> {
  return (next) => async (args) => {
    const result = await next(args);
    const response = result.response as RawResponse;
    if (typeof response?.statusCode !== 'number') return result;
    const type = header(response, 'content-type');
    if (response.statusCode >= 300 && !/json/i.test(type)) {
      const text = await readSome(response.body, ERROR_BODY_LIMIT);
      // Query-protocol XML (<Code>AccessDenied</Code>) or the header AWS sets on JSON errors.
      const code = /<Code>\s*([A-Za-z0-9_.]{1,100})\s*<\/Code>/.exec(text)?.[1] ?? (header(response, 'x-amzn-errortype').split(':')[0] || undefined);
      const m = /<Message>\s*(?:<!\[CDATA\[([\s\S]{1,1000}?)\]\]>|([^<]{1,1000}))\s*<\/Message>/.exec(text);
      const message = (m?.[1] ?? m?.[2])?.trim();
      throw new NonJsonErrorResponse(code, response.statusCode, message);
    }
    const limit = maxBytes === undefined ? LIST_BODY_LIMIT : maxBytes * WORST_ENCODING_RATIO + METADATA_ALLOWANCE;
    const length = Number(header(response, 'content-length'));
    if (response.statusCode < 300 && Number.isFinite(length) && length > limit) {
      discard(response.body);
      throw new OversizedResponse(length);
    }
    response.body = capped(response.body, limit);
    return result;
  };
}

export const RESPONSE_CHECK_OPTIONS: DeserializeHandlerOptions & AbsoluteLocation = { step: 'deserialize', priority: 'low', name: 'dsoResponseCheck' };
