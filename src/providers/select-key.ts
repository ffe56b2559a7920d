// `#KEY` in a reference: one field of a structured secret, a JSON object (as Vault, AWS and most
// stores hold them) or KEY=VALUE lines. Pure; the whole value is wiped by the caller.
import { ProviderError } from './contract.ts';

/**
 * The bytes of field `key` of `value`. A string field gives its text, a number or boolean its
 * JSON text, an object or array its JSON. Parsing makes string copies of the fields (JavaScript
 * strings cannot be wiped); the bytes returned are a new buffer.
 */
export function selectKey(value: Uint8Array, key: string): Uint8Array {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(value);
  } catch {
    throw new ProviderError('key_not_found', `the secret is not text, so #${key} cannot select a field of it`);
  }
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ProviderError('key_not_found', `the secret starts like JSON but is not valid JSON, so #${key} cannot select a field of it`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ProviderError('key_not_found', `the secret is not a JSON object, so #${key} cannot select a field of it`);
    }
    if (!Object.hasOwn(parsed, key)) throw new ProviderError('key_not_found', `the secret has no field "${key}" (it has ${describeKeys(Object.keys(parsed))})`);
    const field = (parsed as Record<string, unknown>)[key];
    if (field === null || field === undefined) throw new ProviderError('key_not_found', `field "${key}" of the secret is null`);
    return new TextEncoder().encode(typeof field === 'string' ? field : JSON.stringify(field));
  }
  // KEY=VALUE lines (a .env-like secret); blank lines and # comments are skipped.
  const keys: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new ProviderError('key_not_found', `the secret is neither a JSON object nor KEY=VALUE lines, so #${key} cannot select a field of it`);
    const k = line.slice(0, eq).trim();
    keys.push(k);
    if (k === key) return new TextEncoder().encode(line.slice(eq + 1));
  }
  throw new ProviderError('key_not_found', `the secret has no field "${key}" (it has ${describeKeys(keys)})`);
}

/** Field names help find a typo; they are names, not values. */
function describeKeys(keys: string[]): string {
  if (keys.length === 0) return 'no fields';
  const shown = keys.slice(0, 10).map((k) => JSON.stringify(k.slice(0, 64)));
  return `${keys.length === 1 ? 'the field' : 'the fields'} ${shown.join(', ')}${keys.length > 10 ? ', ...' : ''}`;
}
