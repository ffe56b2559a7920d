// Takes a secret's base64 out of a plugin's answer line as bytes: finds the top-level
// "value_base64" string in the JSON object, decodes it straight into a Uint8Array of the exact
// size, and leaves the line with "" in its place, for JSON.parse. So the value never becomes a
// JavaScript string (which could not be wiped), not even as base64.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const SLASH = 0x2f;
const FIELD = new TextEncoder().encode('value_base64');

export type Extracted =
  /** The line has no top-level value_base64 string (fine for answers that are not values). */
  | { kind: 'none' }
  /** `rest` is the line with the value cut out; `value` is the decoded secret. */
  | { kind: 'value'; rest: Uint8Array; value: Uint8Array }
  | { kind: 'too_large'; size: number }
  /** Not a JSON object, or value_base64 is not valid base64. */
  | { kind: 'invalid'; why: string };

/** Finds, checks and decodes the value; refuses a value over `maxBytes` before decoding it. */
export function extractValue(line: Uint8Array, maxBytes: number): Extracted {
  const span = findField(line);
  if (span === 'invalid') return { kind: 'invalid', why: 'the line is not a JSON object' };
  if (span === undefined) return { kind: 'none' };
  const [start, end] = span;
  const size = decodedSize(line, start, end);
  if (size === undefined) return { kind: 'invalid', why: 'value_base64 is not standard base64 (A-Z a-z 0-9 + / and = padding)' };
  if (size > maxBytes) return { kind: 'too_large', size };
  const value = decode(line, start, end, size);
  const rest = new Uint8Array(line.length - (end - start));
  rest.set(line.subarray(0, start));
  rest.set(line.subarray(end), start);
  return { kind: 'value', rest, value };
}

// --- Finding the field: a scan of the top-level object that skips nested values and strings.

const isSpace = (b: number | undefined) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;

/** After the string starting at `i` (a quote): the index past its closing quote, or -1. */
function skipString(b: Uint8Array, i: number): number {
  for (let j = i + 1; j < b.length; j++) {
    if (b[j] === BACKSLASH) j++;
    else if (b[j] === QUOTE) return j + 1;
  }
  return -1;
}

/** After the JSON value starting at `i`, or -1; JSON.parse checks the details later. */
function skipValue(b: Uint8Array, i: number): number {
  if (b[i] === QUOTE) return skipString(b, i);
  if (b[i] === 0x7b || b[i] === 0x5b) {
    let depth = 0;
    for (let j = i; j < b.length; j++) {
      if (b[j] === QUOTE) {
        j = skipString(b, j) - 1;
        if (j < 0) return -1;
      } else if (b[j] === 0x7b || b[j] === 0x5b) depth++;
      else if (b[j] === 0x7d || b[j] === 0x5d) {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    return -1;
  }
  let j = i;
  while (j < b.length && b[j] !== 0x2c && b[j] !== 0x7d && b[j] !== 0x5d && !isSpace(b[j])) j++;
  return j === i ? -1 : j;
}

/** [start, end) of the text of the top-level "value_base64" string, undefined without one. */
function findField(b: Uint8Array): [number, number] | undefined | 'invalid' {
  let i = 0;
  const ws = () => {
    while (isSpace(b[i])) i++;
  };
  ws();
  if (b[i] !== 0x7b) return 'invalid';
  i++;
  let found: [number, number] | undefined;
  for (;;) {
    ws();
    if (b[i] === 0x7d) return found;
    if (b[i] !== QUOTE) return 'invalid';
    const keyEnd = skipString(b, i);
    if (keyEnd < 0) return 'invalid';
    const isField = keyEnd - i - 2 === FIELD.length && FIELD.every((c, k) => b[i + 1 + k] === c);
    i = keyEnd;
    ws();
    if (b[i] !== 0x3a) return 'invalid';
    i++;
    ws();
    if (isField && b[i] === QUOTE) {
      // A repeated key would leave JSON.parse with another value than the one decoded.
      if (found) return 'invalid';
      const end = skipString(b, i);
      if (end < 0) return 'invalid';
      found = [i + 1, end - 1];
      i = end;
    } else {
      const end = skipValue(b, i);
      if (end < 0) return 'invalid';
      i = end;
    }
    ws();
    if (b[i] === 0x2c) i++;
    else if (b[i] === 0x7d) return found;
    else return 'invalid';
  }
}

// --- Decoding: standard base64 with padding; JSON may escape '/' as '\/', nothing else.

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const SEXTET = new Int16Array(256).fill(-1);
for (let k = 0; k < ALPHABET.length; k++) SEXTET[ALPHABET.charCodeAt(k)] = k;
const PAD = 0x3d;

/** Calls `each` with every base64 character of b[start, end), unescaping '\/'; false on anything else. */
function forEachChar(b: Uint8Array, start: number, end: number, each: (c: number) => void): boolean {
  for (let j = start; j < end; j++) {
    let c = b[j]!;
    if (c === BACKSLASH) {
      if (b[j + 1] !== SLASH) return false;
      c = SLASH;
      j++;
    }
    each(c);
  }
  return true;
}

/** The number of bytes the base64 decodes to, or undefined when it is not valid base64. */
function decodedSize(b: Uint8Array, start: number, end: number): number | undefined {
  let chars = 0;
  let pad = 0;
  let bad = false;
  const ok = forEachChar(b, start, end, (c) => {
    if (c === PAD) pad++;
    else if (pad > 0 || SEXTET[c] === -1) bad = true;
    chars++;
  });
  if (!ok || bad || chars % 4 !== 0 || pad > 2) return undefined;
  return (chars / 4) * 3 - pad;
}

function decode(b: Uint8Array, start: number, end: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let acc = 0;
  let bits = 0;
  let o = 0;
  forEachChar(b, start, end, (c) => {
    if (c === PAD) return;
    acc = ((acc << 6) | SEXTET[c]!) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (o < size) out[o++] = (acc >> bits) & 0xff;
    }
  });
  acc = 0;
  return out;
}
