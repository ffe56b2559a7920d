// Reading an HTTP answer that may hold a secret: into one buffer the caller owns, refused as soon
// as it is known to be over a limit (from its Content-Length, or while reading, so an endless
// answer cannot fill memory), with every chunk read along the way wiped.

/** The answer is over the limit; `declared` is its Content-Length when that said so first. */
export class BodyOverLimit extends Error {
  constructor(
    readonly limit: number,
    readonly declared?: number,
  ) {
    super(declared === undefined ? `the answer is over the ${limit}-byte limit` : `the answer is ${declared} bytes, over the ${limit}-byte limit`);
    this.name = 'BodyOverLimit';
  }
}

/**
 * The whole body of `response` (or of a request), or BodyOverLimit. A failure while reading (a
 * reset, an abort) is thrown as it came, for the caller to classify. No body gives empty bytes.
 */
export async function readBodyCapped(response: Pick<Response, 'headers' | 'body'>, limit: number): Promise<Uint8Array> {
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (Number.isFinite(declared) && declared > limit) {
    await response.body?.cancel().catch(() => {});
    throw new BodyOverLimit(limit, declared);
  }
  if (!response.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      total += value.length;
      if (total > limit) {
        await reader.cancel().catch(() => {});
        throw new BodyOverLimit(limit);
      }
    }
    const body = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
      body.set(c, at);
      at += c.length;
    }
    return body;
  } finally {
    for (const c of chunks) c.fill(0);
  }
}
