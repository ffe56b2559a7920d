// Huawei Cloud's AK/SK request signing (SDK-HMAC-SHA256), written here rather than taken from
// @huaweicloud/huaweicloud-sdk-core, which pulls axios, lodash, log4js and moment into every
// provider process. It follows that SDK's AKSKSigner exactly (the tests check it against it):
// canonical request, string to sign, HMAC-SHA256 with the SK, and the Authorization header.
import { createHash, createHmac } from 'node:crypto';

export const SIGNING_ALGORITHM = 'SDK-HMAC-SHA256';

export interface SigningCredentials {
  accessKey: string;
  /** The SK as bytes this provider owns (zeroed when the provider closes). */
  secretKey: Uint8Array;
  /** Present for temporary credentials (an ECS agency, STS): sent as X-Security-Token. */
  securityToken?: string;
}

export interface RequestToSign {
  method: string;
  /** The URL exactly as it goes on the wire (WHATWG-encoded path and query). */
  url: URL;
  /** Headers to send and sign, besides those the signer adds. */
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}

/**
 * The headers to send with the request: the given ones plus Host, X-Sdk-Date,
 * X-Security-Token (temporary credentials) and Authorization. Every header sent is signed, as the
 * SDK does.
 */
export function signRequest(request: RequestToSign, credentials: SigningCredentials, now: Date = new Date()): Record<string, string> {
  const headers: Record<string, string> = { ...request.headers, 'X-Sdk-Date': sdkDate(now), host: request.url.host };
  if (credentials.securityToken !== undefined) headers['X-Security-Token'] = credentials.securityToken;
  // Sorted by code unit, as the signing guide says. (The Node SDK sorts its canonical headers with
  // localeCompare instead, which differs only for names with `_`, which no header here has.)
  const names = Object.keys(headers).sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : a.toLowerCase() > b.toLowerCase() ? 1 : 0));
  const signedHeaders = names.map((n) => n.toLowerCase()).join(';');
  const canonicalHeaders = names.map((n) => `${n.toLowerCase()}:${headers[n]}\n`).join('');
  const canonicalRequest = [
    request.method.toUpperCase(),
    canonicalUri(request.url.pathname),
    canonicalQuery(request.url.searchParams),
    canonicalHeaders,
    signedHeaders,
    sha256Hex(request.body ?? ''),
  ].join('\n');
  const stringToSign = [SIGNING_ALGORITHM, headers['X-Sdk-Date'], sha256Hex(canonicalRequest)].join('\n');
  const signature = createHmac('sha256', credentials.secretKey).update(stringToSign).digest('hex');
  headers.Authorization = `${SIGNING_ALGORITHM} Access=${credentials.accessKey}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return headers;
}

/** YYYYMMDDTHHMMSSZ in UTC, the X-Sdk-Date form. */
export function sdkDate(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

/**
 * Each path segment percent-encoded again (the SDK encodes the path it sends, so `%20` on the
 * wire signs as `%2520`), with a trailing slash. CSMS names are letters, digits, `.`, `_` and `-`,
 * so in practice nothing here is encoded.
 */
function canonicalUri(pathname: string): string {
  const uri = pathname.split('/').map(encode).join('/');
  return uri.endsWith('/') ? uri : `${uri}/`;
}

/** Keys sorted (by UTF-16 code unit, as the SDK does), repeated keys' values sorted, all encoded. */
function canonicalQuery(params: URLSearchParams): string {
  const byKey = new Map<string, string[]>();
  for (const [k, v] of params) byKey.set(k, [...(byKey.get(k) ?? []), v]);
  const parts: string[] = [];
  for (const key of [...byKey.keys()].sort()) {
    for (const value of byKey.get(key)!.sort()) parts.push(`${encode(key)}=${encode(value)}`);
  }
  return parts.join('&');
}

/** RFC 3986: everything but A-Z a-z 0-9 - _ . ~ becomes %XX of its UTF-8 bytes, upper-case. */
function encode(text: string): string {
  let out = '';
  for (const byte of new TextEncoder().encode(text)) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-_.~]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
