// Near-miss references: values that were probably meant to be `dso://` or `dsofile://` references
// but are not (`dsofile:/app/x`, `DSOFILE://app/x`, `dso:app/x`), so Compose would pass them to
// the container as literal strings, and secret keys that were probably meant to be `x-dso`.
// Pure: the caller warns, or refuses with --strict. A value shown in a message is only ever a
// scheme and, when it parses as one, a secret name: a near-miss may still be a real value.
import { editDistance } from '../cli/suggest.ts';
import type { MistypedXDso } from './files.ts';
import { environmentEntries } from './plan.ts';
import { parseReference, parseSecretId } from './references.ts';

export interface NearMiss {
  /** Where: `service "app", variable DB_PASSWORD` or `secrets.tls_key`. */
  where: string;
  /** What was written, as much as may be shown: `"dsofile:/app/x"`, or `"DSO:…"` when the rest is not a name. */
  written: string;
  /** What was probably meant: `dsofile://app/x`, or `a dsofile:// reference` when the rest is not a name. */
  meant: string;
}

type Scheme = 'dso://' | 'dsofile://';

/**
 * The reference `value` was probably meant to be, if it is a near miss. What counts, exactly:
 * - the scheme word `dso` or `dsofile` in any case, followed by `:` and 0 to 3 slashes (or by
 *   `//` without the colon), other than the exact `dso://` and `dsofile://` (those are references);
 * - a word one edit from `dsofile` (`dsofle`, `dsofiles`, `dso-file` without its separator) or
 *   from `dso` (`dos`, `dsoo`), of at least 3 letters, followed by exactly `://`.
 * Never: `dso:` or `dsofile:` with nothing after it, or followed by a port number (`dso:6379`,
 * a host named dso), or any other word.
 */
export function nearMissScheme(value: string): { scheme: Scheme; prefix: string; rest: string } | undefined {
  if (value.startsWith('dso://') || value.startsWith('dsofile://')) return undefined;
  const m = /^([A-Za-z][A-Za-z_-]{1,9})(:\/{0,3}|\/\/)(.*)$/s.exec(value);
  if (!m) return undefined;
  const [, head, separator, rest] = m as unknown as [string, string, string, string];
  if (rest === '' || (separator === ':' && /^\d+(\/|$)/.test(rest))) return undefined;
  const word = head.toLowerCase();
  const bare = word.replace(/[-_]/g, '');
  let scheme: Scheme | undefined;
  if (word === 'dso' || word === 'dsofile' || bare === 'dsofile') scheme = bare === 'dso' ? 'dso://' : 'dsofile://';
  else if (separator === '://' && bare.length >= 3 && editDistance(bare, 'dsofile') === 1) scheme = 'dsofile://';
  else if (separator === '://' && bare.length >= 3 && editDistance(bare, 'dso') === 1) scheme = 'dso://';
  if (scheme === undefined) return undefined;
  return { scheme, prefix: `${head}${separator}`, rest };
}

/** Every near miss in the services' environments and the top-level secrets' keys, in a stable order. */
export function findNearMisses(model: Record<string, unknown>, mistypedXDso: readonly MistypedXDso[] = []): NearMiss[] {
  const out: NearMiss[] = [];
  const services = (model.services ?? {}) as Record<string, Record<string, unknown> | null>;
  for (const service of Object.keys(services).sort()) {
    const def = services[service];
    if (!def || typeof def !== 'object') continue;
    for (const [variable, value] of environmentEntries(def.environment)) {
      if (typeof value !== 'string') continue;
      const miss = nearMissScheme(value);
      if (!miss) continue;
      const where = `service "${service}", variable ${variable}`;
      out.push(parses(() => parseReference(`${miss.scheme}${miss.rest}`, 'near miss'))
        ? { where, written: JSON.stringify(value), meant: `${miss.scheme}${miss.rest}` }
        : { where, written: JSON.stringify(`${miss.prefix}…`), meant: `a ${miss.scheme} reference` });
    }
  }
  for (const m of [...mistypedXDso].sort((a, b) => a.secret.localeCompare(b.secret) || a.key.localeCompare(b.key))) {
    const name = m.value !== undefined && parses(() => parseSecretId(m.value!, 'near miss')) ? m.value : undefined;
    out.push({ where: `secrets.${m.secret}`, written: JSON.stringify(m.key), meant: name === undefined ? 'x-dso' : `x-dso: ${name}` });
  }
  return out;
}

/** The lines of a warning or an error listing near misses. */
export function describeNearMisses(misses: readonly NearMiss[]): string {
  return misses.map((m) => `    ${m.where}: ${m.written}, did you mean ${m.meant}?`).join('\n');
}

/** Whether `parse` accepts its text (a reference or a secret id), without minding why not. */
function parses(parse: () => unknown): boolean {
  try {
    parse();
    return true;
  } catch {
    return false;
  }
}
