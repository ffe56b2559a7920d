// The last line of defence before a log line is written: values of credential-named fields,
// secret byte buffers, credential shapes (tokens, bearer headers, signed URLs), and the bytes of
// every secret value DSO currently holds are replaced with "[redacted]". Code should never log a
// value; this catches the day it does by accident (an SDK error that quotes a response body).
import { sanitize } from '../providers/sanitize.ts';
import { SecretBytes } from '../secrets/secret-bytes.ts';

// `secret` is not here: by the seed's log format it holds a secret's name ("secret":"db_password").
const SENSITIVE_KEY = /^(value|password|passphrase|token|credential|authorization|client_secret|secret_string|private_key)$/i;
const REDACTED = '[redacted]';
const MIN_KNOWN = 4;

export class Redactor {
  /** Secret values as bytes, by an id the holder chose; never turned into strings. */
  readonly #known = new Map<string, Uint8Array>();

  /** Registers a value to scrub from every line (the caller keeps ownership and calls forget). */
  remember(id: string, value: Uint8Array): void {
    if (value.length >= MIN_KNOWN) this.#known.set(id, value);
  }

  forget(id: string): void {
    this.#known.delete(id);
  }

  /** A JSON-safe copy of `fields` with sensitive values replaced. */
  fields(fields: Record<string, unknown>): Record<string, unknown> {
    return scrubValue(fields, '') as Record<string, unknown>;
  }

  /** The encoded line with every known secret's bytes replaced (a byte search: no string copy of a secret). */
  line(text: string): Uint8Array {
    let bytes = new TextEncoder().encode(text);
    if (this.#known.size === 0) return bytes;
    const mark = new TextEncoder().encode(REDACTED);
    for (const value of this.#known.values()) {
      let at = indexOf(bytes, value, 0);
      while (at !== -1) {
        const next = new Uint8Array(bytes.length - value.length + mark.length);
        next.set(bytes.subarray(0, at), 0);
        next.set(mark, at);
        next.set(bytes.subarray(at + value.length), at + mark.length);
        bytes = next;
        at = indexOf(bytes, value, at + mark.length);
      }
    }
    return bytes;
  }
}

function scrubValue(value: unknown, key: string, depth = 0): unknown {
  if (value instanceof SecretBytes || value instanceof Uint8Array) return REDACTED;
  if (key && SENSITIVE_KEY.test(key) && value !== undefined && value !== null && typeof value !== 'boolean') return REDACTED;
  if (typeof value === 'string') return sanitize(value);
  if (value instanceof Error) return sanitize(value.message);
  if (depth > 5) return '[too deep]';
  if (Array.isArray(value)) return value.map((v) => scrubValue(v, key, depth + 1));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrubValue(v, k, depth + 1)]));
  return value;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array, from: number): number {
  const first = needle[0]!;
  const last = haystack.length - needle.length;
  outer: for (let i = haystack.indexOf(first, from); i !== -1 && i <= last; i = haystack.indexOf(first, i + 1)) {
    for (let j = 1; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
