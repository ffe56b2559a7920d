// The wire format between DSO and a provider child process (`isolation: process`): length-
// prefixed frames over its stdin and stdout, each a JSON header and, for a secret value, the raw
// bytes after it, so a value crosses as bytes (never base64 text in a JSON string).
//
//   frame := u32be headerLength, header (UTF-8 JSON), [u32be valueLength, value bytes]
//   The header of a frame that carries bytes has `"$bytes": "value"`: the field the bytes belong to.

const MAX_HEADER = 4 * 1024 * 1024;
/** Far above any accepted secret (10 MiB by default): a bound on what a broken peer can make us buffer. */
const MAX_VALUE = 256 * 1024 * 1024;

/** Encodes a message; a Uint8Array in field `field` (at most one) travels as the trailing bytes. */
export function encodeFrame(message: Record<string, unknown>): Uint8Array {
  const binaryField = Object.keys(message).find((k) => message[k] instanceof Uint8Array);
  const header = binaryField === undefined ? message : { ...message, [binaryField]: undefined, $bytes: binaryField };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const value = binaryField === undefined ? undefined : (message[binaryField] as Uint8Array);
  const out = new Uint8Array(4 + json.length + (value ? 4 + value.length : 0));
  const view = new DataView(out.buffer);
  view.setUint32(0, json.length);
  out.set(json, 4);
  if (value) {
    view.setUint32(4 + json.length, value.length);
    out.set(value, 8 + json.length);
  }
  return out;
}

export class FrameError extends Error {}

/** Reassembles frames from chunks as they arrive; wipes the buffered bytes it consumed. */
export class FrameDecoder {
  #buf = new Uint8Array(0);

  /** Adds `chunk` and returns every message now complete. Throws FrameError on a malformed stream. */
  push(chunk: Uint8Array): Array<Record<string, unknown>> {
    const joined = new Uint8Array(this.#buf.length + chunk.length);
    joined.set(this.#buf, 0);
    joined.set(chunk, this.#buf.length);
    this.#buf.fill(0);
    this.#buf = joined;
    const out: Array<Record<string, unknown>> = [];
    for (;;) {
      const msg = this.#next();
      if (!msg) break;
      out.push(msg);
    }
    return out;
  }

  /** Wipes what is buffered (a partial value, on shutdown). */
  wipe(): void {
    this.#buf.fill(0);
    this.#buf = new Uint8Array(0);
  }

  #next(): Record<string, unknown> | undefined {
    const buf = this.#buf;
    if (buf.length < 4) return undefined;
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const headerLength = view.getUint32(0);
    if (headerLength > MAX_HEADER) throw new FrameError(`frame header of ${headerLength} bytes`);
    if (buf.length < 4 + headerLength) return undefined;
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(4, 4 + headerLength)));
    } catch {
      throw new FrameError('frame header is not JSON');
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new FrameError('frame header is not an object');
    let end = 4 + headerLength;
    const field = header.$bytes;
    if (field !== undefined) {
      if (typeof field !== 'string' || field === '$bytes') throw new FrameError('bad $bytes field');
      if (buf.length < end + 4) return undefined;
      const valueLength = view.getUint32(end);
      if (valueLength > MAX_VALUE) throw new FrameError(`frame value of ${valueLength} bytes`);
      if (buf.length < end + 4 + valueLength) return undefined;
      header[field] = buf.slice(end + 4, end + 4 + valueLength);
      delete header.$bytes;
      end += 4 + valueLength;
    }
    const rest = buf.slice(end);
    buf.fill(0);
    this.#buf = rest;
    return header;
  }
}
