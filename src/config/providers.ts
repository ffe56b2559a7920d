// The `providers:` section of dso.yaml: the keys every provider entry has (type, isolation,
// timeout, env), then the provider's own keys checked by its definition's schema.
import * as v from 'valibot';
import type { Isolation } from '../providers/contract.ts';
import { isProviderKind, loadDefinition, PROVIDER_KINDS } from '../providers/registry.ts';
import { issueProblems, SAFE_MESSAGES } from './issues.ts';
import { DURATION_FORM, MAX_TIMER_FORM, MAX_TIMER_MS, parseDuration } from './units.ts';

export interface ProviderSettings {
  /** The entry's key in dso.yaml: the PROVIDER in `dso://PROVIDER:PATH`. */
  name: string;
  kind: string;
  isolation: Isolation;
  /** The limit for one call to the provider. */
  timeoutMs: number;
  /** Variables the provider must get; starting it fails if one is not set. */
  env: string[];
  /** Variables it gets when they are set. */
  optionalEnv: string[];
  /** Variables DSO sets for it. */
  fixedEnv: Record<string, string>;
  /** The provider's own, validated configuration (the entry without the generic keys). */
  config: unknown;
}

export const DEFAULT_PROVIDER_TIMEOUT_MS = 15_000;
const NAME = /^[a-z][a-z0-9_-]{0,62}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const GENERIC_KEYS = ['type', 'isolation', 'timeout', 'env'];

const genericSchema = v.object({
  type: v.optional(v.string('type must be a provider kind')),
  isolation: v.optional(v.picklist(['worker', 'process'], 'isolation must be worker or process')),
  timeout: v.optional(
    v.pipe(
      v.string(`timeout must be ${DURATION_FORM}`),
      v.check((s) => (parseDuration(s) ?? 0) > 0, `timeout must be ${DURATION_FORM}`),
      // The host waits a little past the timeout with a timer (see MAX_TIMER_MS); leave it room.
      v.check((s) => (parseDuration(s) ?? 0) <= MAX_TIMER_MS - 60_000, `timeout must be ${MAX_TIMER_FORM}`),
    ),
  ),
  env: v.optional(v.array(v.pipe(v.string('env lists variable names'), v.regex(ENV_NAME, 'env lists variable names like HTTPS_PROXY')), 'env must be a list of variable names')),
});

type Report = (keys: Array<string | number>, message: string) => void;

export async function providersSection(section: unknown, report: Report): Promise<Map<string, ProviderSettings>> {
  const out = new Map<string, ProviderSettings>();
  if (section === undefined || section === null) return out;
  if (typeof section !== 'object' || Array.isArray(section)) {
    report(['providers'], 'providers must be a mapping of provider names to their settings');
    return out;
  }
  for (const [name, entry] of Object.entries(section as Record<string, unknown>)) {
    const settings = await providerEntry(name, entry, report);
    if (settings) out.set(name, settings);
  }
  return out;
}

async function providerEntry(name: string, entry: unknown, report: Report): Promise<ProviderSettings | undefined> {
  const at = ['providers', name];
  if (!NAME.test(name)) {
    report(at, 'a provider name is lowercase letters, digits, "_" and "-", starting with a letter (it is the PROVIDER in dso://PROVIDER:PATH)');
    return undefined;
  }
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    report(at, 'expected a mapping of this provider\'s settings');
    return undefined;
  }
  const generic = v.safeParse(genericSchema, entry, SAFE_MESSAGES);
  if (!generic.success) {
    for (const p of issueProblems(generic.issues, at)) report(p.keys, p.message);
    return undefined;
  }
  const kind = generic.output.type ?? name;
  if (!isProviderKind(kind)) {
    // The name is a key and may be shown; a `type:` value is not repeated (as no value found is).
    report(generic.output.type === undefined ? at : [...at, 'type'], `unknown provider kind${generic.output.type === undefined ? ` ${JSON.stringify(kind)}` : ''}; the kinds are ${PROVIDER_KINDS.join(', ')} (set type: when the name is not the kind)`);
    return undefined;
  }
  const definition = await loadDefinition(kind);
  const own = Object.fromEntries(Object.entries(entry).filter(([k]) => !GENERIC_KEYS.includes(k)));
  const parsed = v.safeParse(definition.schema, own, SAFE_MESSAGES);
  if (!parsed.success) {
    for (const p of issueProblems(parsed.issues, at)) report(p.keys, p.message);
    return undefined;
  }
  const config = parsed.output;
  return {
    name,
    kind,
    isolation: generic.output.isolation ?? definition.defaultIsolation,
    timeoutMs: generic.output.timeout === undefined ? DEFAULT_PROVIDER_TIMEOUT_MS : parseDuration(generic.output.timeout)!,
    env: unique([...definition.environment(config), ...(generic.output.env ?? [])]),
    optionalEnv: unique(definition.optionalEnvironment?.(config) ?? []),
    fixedEnv: definition.fixedEnvironment?.(config) ?? {},
    config,
  };
}

function unique(names: string[]): string[] {
  return [...new Set(names)].sort();
}
