// What every way of getting Huawei Cloud credentials gives the CSMS client: an AK, the SK as
// bytes, and for temporary credentials a security token.
import type { SigningCredentials } from './signer.ts';

export interface CredentialSource {
  /** Credentials to sign a request made now. Throws ProviderError (auth, config, unavailable...). */
  get(signal: AbortSignal): Promise<SigningCredentials>;
  /**
   * CSMS refused the credentials (HTTP 401): forget them. True when asking again may give other
   * ones (a rotated agency credential), so the call is worth one retry.
   */
  refused(): boolean;
  /** Text that must never appear in an error: the SK and the token held. */
  redactions(): string[];
  /** Zeroes the SKs held. */
  close(): void;
}

/** A fresh buffer holding `text` as UTF-8; the string itself cannot be wiped and stays with the GC. */
export function keyBytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/**
 * The SK and token of `c` as text, to strip them from a backend's message. Decoding makes a
 * short-lived string copy of the SK; it was read as a string in the first place (a variable, a
 * file's text, the metadata service's JSON), so this adds no copy that was not already there.
 */
export function redactionsOf(...held: Array<SigningCredentials | undefined>): string[] {
  const out: string[] = [];
  for (const c of held) {
    if (!c) continue;
    out.push(new TextDecoder().decode(c.secretKey));
    if (c.securityToken !== undefined) out.push(c.securityToken);
  }
  return out;
}
