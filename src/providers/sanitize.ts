// Strips credentials from text that came from a backend or an SDK (error messages, stderr lines)
// before anyone logs or shows it: tokens, signatures, signed-URL query strings, authorization
// headers, and any credential value the provider was given.

const PATTERNS: Array<[RegExp, string]> = [
  // Query strings carry signatures and tokens (X-Amz-Signature, sig=, SAS tokens, ?token=).
  [/(https?:\/\/[^\s"'?#]+)\?[^\s"'#]*/gi, '$1?[redacted]'],
  // Authorization headers and bearer tokens, in any quoting.
  [/\b(authorization|x-vault-token|x-auth-token|x-security-token|x-amz-security-token|cookie|set-cookie)(["']?\s*[:=]\s*["']?)[^"'\r\n,}]+/gi, '$1$2[redacted]'],
  [/\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, '$1 [redacted]'],
  // key=value and "key": "value" pairs whose key names a credential.
  [
    /\b([A-Za-z_]*(?:token|secret|password|passwd|signature|credential|client_assertion|jwt|sas|sig|session)[A-Za-z_]*)(["']?\s*[:=]\s*["']?)[^\s"'&,;}]+/gi,
    '$1$2[redacted]',
  ],
  // Recognisable credential shapes.
  [/\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/g, '[redacted-jwt]'], // JWTs
  [/\b(?:hvs|hvb|hvr|s|b|r)\.[A-Za-z0-9_-]{20,}/g, '[redacted-token]'], // Vault tokens
  [/\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g, '[redacted-key-id]'], // AWS access key ids
];

/**
 * The patterns backtrack: on a megabyte error page from a garbage backend they would run for
 * minutes. They run on at most this many characters, the output keeping far fewer anyway.
 */
const MAX_SCANNED = 8192;

/**
 * The start of a long `text`, cut at a whitespace character: no pattern's credential holds one
 * (or the pattern redacts any start of it), so the cut never leaves a piece of one unmatched.
 */
function scannable(text: string): string {
  if (text.length <= MAX_SCANNED) return text;
  for (let i = MAX_SCANNED; i > 0; i--) if (/\s/.test(text[i]!)) return text.slice(0, i);
  return `[${text.length} characters without a space, not shown]`;
}

/** Longest first, so that a credential containing another is replaced whole. */
function byLength(a: string, b: string): number {
  return b.length - a.length;
}

/**
 * `text` without credentials. `known` lists exact values to remove wherever they appear (the
 * provider's token, client secret, secret access key...); values shorter than 4 characters are
 * ignored, as replacing them would garble the message and they protect nothing.
 */
export function sanitize(text: string, known: Iterable<string> = []): string {
  let out = text;
  for (const value of [...known].filter((v) => v.length >= 4).sort(byLength)) {
    out = out.split(value).join('[redacted]');
  }
  out = scannable(out);
  for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement);
  // Errors can be long (HTML error pages, stack traces): keep the start, which says what failed.
  if (out.length > 500) out = `${out.slice(0, 500)}...`;
  return out;
}
