// The "dso-provider/1" protocol between DSO and a plugin executable, one JSON object per line on
// the plugin's stdin and stdout (docs/providers/plugin.md is its specification): the lines DSO
// writes, in a fixed key order a shell script can pick apart with sed, and the checks every line
// the plugin writes must pass. A value's base64 is never parsed here: see value-field.ts.
import * as v from 'valibot';
import type { ProviderErrorKind } from '../../src/providers/contract.ts';

export const PROTOCOL = 'dso-provider/1';

/** The error kinds a plugin may report; key_not_found and crashed belong to DSO. */
export const PLUGIN_ERROR_KINDS = ['not_found', 'denied', 'auth', 'unavailable', 'timeout', 'too_large', 'invalid_response', 'config', 'internal'] as const satisfies readonly ProviderErrorKind[];

// What DSO promises about `path`, `prefix` and `version` in its requests: the characters of the
// reference grammar only, so that a shell script can use them without quoting traps.
export const PATH = /^[A-Za-z0-9_+=@.-]+(\/[A-Za-z0-9_+=@.-]+)*$/;
export const PREFIX = /^[A-Za-z0-9_+=@./-]{0,1024}$/;
export const VERSION = /^[A-Za-z0-9_.-]{1,128}$/;

/** Whether `path` is a secret path DSO may send (and so the kind of name a list may return). */
export function isSecretPath(path: string): boolean {
  return path.length <= 1024 && PATH.test(path) && !path.split('/').some((s) => s === '.' || s === '..');
}

/** A plugin's words made safe for a terminal and a log line: no control characters, bounded. */
export function printable(text: string, max: number): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').slice(0, max);
}

/** The longest line accepted for a list of names. */
export const LIST_LINE_BYTES = 8 * 1024 * 1024;

/** What a line may hold besides a value: a handshake, an error message, a list of names. */
export const SMALL_LINE_BYTES = 64 * 1024;

/**
 * The longest line accepted while a value of up to `maxBytes` may come: its base64 (4 bytes per 3)
 * and room for the other fields. A longer line is never buffered (see lines.ts).
 */
export function lineLimit(maxBytes: number): number {
  return 4 * Math.ceil(maxBytes / 3) + SMALL_LINE_BYTES;
}

// --- DSO → plugin. JSON.stringify writes one compact line, keys in the order written here.

export function helloLine(name: string, settings: Record<string, unknown>): string {
  return `${JSON.stringify({ type: 'hello', protocol: PROTOCOL, name, settings })}\n`;
}

export function getLine(id: number, path: string, maxBytes: number, version?: string): string {
  return `${JSON.stringify({ type: 'get', id, path, max_bytes: maxBytes, ...(version === undefined ? {} : { version }) })}\n`;
}

export function listLine(id: number, prefix: string): string {
  return `${JSON.stringify({ type: 'list', id, prefix })}\n`;
}

// --- plugin → DSO. Any key order and spacing; unknown keys are ignored (room for later versions).

const text = (what: string, max: number) => v.pipe(v.string(`${what} must be a string`), v.maxLength(max, `${what} must be at most ${max} characters`));
const kind = v.picklist(PLUGIN_ERROR_KINDS, `kind must be one of ${PLUGIN_ERROR_KINDS.join(', ')}`);
const message = text('message', 4000);
const id = v.pipe(v.number('id must be a number'), v.safeInteger('id must be a whole number'), v.minValue(1, 'id must be 1 or more'));

export const handshakeSchema = v.variant(
  'type',
  [
    v.object({
      type: v.literal('ready'),
      protocol: v.optional(v.literal(PROTOCOL, `protocol must be ${PROTOCOL}`)),
      capabilities: v.optional(
        v.object({
          list: v.optional(v.boolean('capabilities.list must be true or false'), false),
          versions: v.optional(v.boolean('capabilities.versions must be true or false'), false),
        }, 'capabilities must be an object'),
        () => ({ list: false, versions: false }),
      ),
    }),
    v.object({ type: v.literal('error'), kind, message }),
  ],
  'the first line must be {"type":"ready",...} or {"type":"error",...}',
);

/**
 * An answer. For `value`, value_base64 has already been cut out of the line and decoded, so here
 * it must be the empty string left in its place (a value sent any other way is refused).
 */
export const answerSchema = v.variant(
  'type',
  [
    v.object({
      type: v.literal('value'),
      id,
      value_base64: v.literal('', 'value_base64 must be a plain JSON string of base64'),
      version: v.optional(v.pipe(v.string('version must be a string'), v.regex(/^[\x21-\x7e]{1,256}$/, 'version must be 1 to 256 printable ASCII characters, no spaces'))),
    }),
    v.object({ type: v.literal('names'), id, names: v.pipe(v.array(text('a name', 1024), 'names must be a list of strings'), v.maxLength(100_000, 'names must list at most 100000 names')) }),
    v.object({ type: v.literal('error'), id, kind, message }),
  ],
  'an answer must be {"id":N,"type":"value"|"names"|"error",...}',
);

export type Handshake = v.InferOutput<typeof handshakeSchema>;
export type Answer = v.InferOutput<typeof answerSchema>;

/**
 * The id of the answer an oversized line starts, read from its first bytes when `"id":N` is among
 * them. Bytes, not text: the head may hold the start of a value's base64.
 */
export function idFromHead(head: Uint8Array): number | undefined {
  const key = [0x22, 0x69, 0x64, 0x22]; // "id"
  const space = (b: number | undefined) => b === 0x20 || b === 0x09 || b === 0x0d;
  outer: for (let i = 0; i + key.length <= head.length; i++) {
    for (let k = 0; k < key.length; k++) if (head[i + k] !== key[k]) continue outer;
    let j = i + key.length;
    while (space(head[j])) j++;
    if (head[j] !== 0x3a) continue; // ':'
    j++;
    while (space(head[j])) j++;
    let n = 0;
    let digits = 0;
    while (digits < 15 && head[j] !== undefined && head[j]! >= 0x30 && head[j]! <= 0x39) {
      n = n * 10 + (head[j]! - 0x30);
      j++;
      digits++;
    }
    if (digits > 0) return n;
  }
  return undefined;
}
