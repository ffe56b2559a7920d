// The `providers:` section of dso.yaml: the keys every provider entry has (type, isolation,
// timeout, env, user), then the provider's own keys checked by its definition's schema.
import * as v from 'valibot';
import type { Isolation } from '../providers/contract.ts';
import { isProviderKind, loadDefinition, PROVIDER_KINDS } from '../providers/registry.ts';
import { readAccounts, type Accounts } from '../system/accounts.ts';
import type { RunAs } from '../system/process-guard.ts';
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
  /**
   * Who the provider's process and its plugin run as when DSO runs as root; undefined: as DSO
   * itself (root), either by choice (`user: root`) or because the kind reads DSO's own files.
   */
  user?: RunAs;
  /** The provider's own, validated configuration (the entry without the generic keys). */
  config: unknown;
}

/** Who a provider runs as, when DSO runs as root and dso.yaml says nothing: nobody:nogroup. */
export const DEFAULT_PROVIDER_USER: RunAs = { uid: 65534, gid: 65534 };
const USER_FORM = 'a user name or uid, optionally followed by :group or :gid, like nobody, dso-vault or 1500:1500';
const ACCOUNT = /^(?:[A-Za-z_][A-Za-z0-9._-]{0,31}|\d{1,10})$/;

export const DEFAULT_PROVIDER_TIMEOUT_MS = 15_000;
const NAME = /^[a-z][a-z0-9_-]{0,62}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const GENERIC_KEYS = ['type', 'isolation', 'timeout', 'env', 'user'];

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
  user: v.optional(
    v.pipe(
      v.union([v.string(), v.number()], `user must be ${USER_FORM}`),
      v.transform(String),
      v.check((s) => {
        const parts = s.split(':');
        return parts.length <= 2 && parts.every((p) => ACCOUNT.test(p));
      }, `user must be ${USER_FORM}`),
    ),
  ),
});

type Report = (keys: Array<string | number>, message: string) => void;

/** Reads the host's accounts once, when a `user:` names one. */
export type AccountsReader = () => Accounts;
const hostAccounts: AccountsReader = () => readAccounts('/etc/passwd', '/etc/group');

export async function providersSection(section: unknown, report: Report, accounts: AccountsReader = hostAccounts): Promise<Map<string, ProviderSettings>> {
  const out = new Map<string, ProviderSettings>();
  if (section === undefined || section === null) return out;
  if (typeof section !== 'object' || Array.isArray(section)) {
    report(['providers'], 'providers must be a mapping of provider names to their settings');
    return out;
  }
  let known: Accounts | undefined;
  const lookup = () => (known ??= accounts());
  for (const [name, entry] of Object.entries(section as Record<string, unknown>)) {
    const settings = await providerEntry(name, entry, report, lookup);
    if (settings) out.set(name, settings);
  }
  return out;
}

async function providerEntry(name: string, entry: unknown, report: Report, accounts: AccountsReader): Promise<ProviderSettings | undefined> {
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
  let user: RunAs | undefined = definition.runsAsDso ? undefined : DEFAULT_PROVIDER_USER;
  if (generic.output.user !== undefined) {
    const resolved = resolveUser(generic.output.user, accounts);
    if (typeof resolved === 'string') {
      report([...at, 'user'], resolved);
      return undefined;
    }
    // root is DSO's own user: the provider then runs as DSO does, with no boundary of its own.
    user = resolved.uid === 0 ? undefined : resolved;
  }
  return {
    name,
    kind,
    isolation: generic.output.isolation ?? definition.defaultIsolation,
    timeoutMs: generic.output.timeout === undefined ? DEFAULT_PROVIDER_TIMEOUT_MS : parseDuration(generic.output.timeout)!,
    env: unique([...definition.environment(config), ...(generic.output.env ?? [])]),
    optionalEnv: unique(definition.optionalEnvironment?.(config) ?? []),
    fixedEnv: definition.fixedEnvironment?.(config) ?? {},
    ...(user === undefined ? {} : { user }),
    config,
  };
}

/**
 * `NAME`, `UID`, `NAME:GROUP` or `UID:GID` as numbers, or the problem (never quoting the value:
 * it is a key's value, and messages here never repeat what was found). Without a group, a user
 * listed in /etc/passwd gets its primary group; a bare uid that is not listed, the same number.
 */
function resolveUser(spec: string, accounts: AccountsReader): RunAs | string {
  const [userPart, groupPart] = spec.split(':') as [string, string | undefined];
  let uid: number;
  let primary: number | undefined;
  if (/^\d+$/.test(userPart)) {
    uid = Number(userPart);
    for (const u of accounts().users.values()) if (u.uid === uid) primary = u.gid;
  } else {
    const u = accounts().users.get(userPart);
    if (!u) return 'this host has no such user in /etc/passwd; create it (useradd --system --no-create-home NAME) or give UID:GID';
    uid = u.uid;
    primary = u.gid;
  }
  let gid: number;
  if (groupPart === undefined) gid = primary ?? uid;
  else if (/^\d+$/.test(groupPart)) gid = Number(groupPart);
  else {
    const g = accounts().groups.get(groupPart);
    if (!g) return 'this host has no such group in /etc/group; create it or give a numeric gid';
    gid = g.gid;
  }
  if (uid >= 0xffffffff || gid >= 0xffffffff) return `user must be ${USER_FORM}, with ids below 4294967295`;
  return { uid, gid };
}

function unique(names: string[]): string[] {
  return [...new Set(names)].sort();
}
