// The agent's environment file (/etc/dso/agent.env, mode 0600): which variables `system setup`
// takes from its own environment (only those the providers of dso.yaml name), and how they are
// written so that systemd reads back exactly the value given. Messages name variables, never
// values.
import type { DsoConfig } from '../config/load.ts';
import { DsoError } from '../errors.ts';

/** Set by systemd for the service itself, or meaningless there: never copied from setup's shell. */
const NOT_CAPTURED = new Set(['HOME', 'PATH', 'USER', 'LOGNAME', 'SHELL', 'PWD', 'TERM', 'LANG', 'LC_ALL']);

export interface ProviderVariables {
  /** Every variable some provider reads, required or optional, sorted. */
  names: string[];
  /** Required variable -> the providers that need it. */
  required: Map<string, string[]>;
  /** Providers that read HOME: their files sit under a home the unit hides. */
  readHome: string[];
}

export function providerVariables(config: DsoConfig): ProviderVariables {
  const names = new Set<string>();
  const required = new Map<string, string[]>();
  const readHome: string[] = [];
  for (const p of config.providers.values()) {
    if (p.optionalEnv.includes('HOME') || p.env.includes('HOME')) readHome.push(p.name);
    for (const n of p.env) {
      if (NOT_CAPTURED.has(n)) continue;
      names.add(n);
      required.set(n, [...(required.get(n) ?? []), p.name]);
    }
    for (const n of p.optionalEnv) if (!NOT_CAPTURED.has(n)) names.add(n);
  }
  return { names: [...names].sort(), required, readHome };
}

/**
 * One `NAME=value` line in systemd's EnvironmentFile syntax. Single quotes keep everything
 * verbatim (no `$`, `%` or backslash processing); a value holding a single quote is written in
 * double quotes with `\ " $ \`` escaped. Verified against systemd 252 by the integration test.
 */
export function envAssignment(name: string, value: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new DsoError('USAGE', `${JSON.stringify(name)} is not a variable name`);
  if (/[\n\r\0]/.test(value)) {
    throw new DsoError('USAGE', `the value of ${name} holds a line break or NUL, which the environment file cannot carry`, {
      hint: 'put such a credential in a file (mode 0600) and point the provider at it with its *_file setting',
    });
  }
  if (!value.includes("'")) return `${name}='${value}'`;
  return `${name}="${value.replace(/[\\"$`]/g, (c) => `\\${c}`)}"`;
}

/** The names a file assigns, as systemd would read them (comments and blank lines skipped). */
export function assignedNames(text: string): Set<string> {
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=/.exec(line);
    if (m && !/^\s*[#;]/.test(line)) out.add(m[1]!);
  }
  return out;
}

const HEADER = `# Provider credentials for the DSO agent (dso-agent.service), read by systemd at start.
# Written by \`dso system setup\` from the variables the providers of /etc/dso/dso.yaml name.
# Keep it mode 0600, owned by root. Lines you add stay; a variable setup is given again is replaced.
`;

/**
 * The new file: the old one's lines, except assignments of the variables being set now, then
 * those. Returns the text, or undefined when nothing is set and there was no file.
 */
export function mergeEnvFile(existing: string | undefined, updates: ReadonlyMap<string, string>): string | undefined {
  if (existing === undefined && updates.size === 0) return undefined;
  const kept = (existing ?? HEADER).split('\n');
  if (kept[kept.length - 1] === '') kept.pop();
  const replaced = kept.filter((line) => {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=/.exec(line);
    return !(m && updates.has(m[1]!));
  });
  const added = [...updates.keys()].sort().map((n) => envAssignment(n, updates.get(n)!));
  return `${[...replaced, ...added].join('\n')}\n`;
}
