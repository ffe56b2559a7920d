// Loading dso.yaml: YAML parsed with positions, every section validated with valibot, and every
// problem reported as FILE:LINE:COLUMN, the key's path and the form expected, never the value
// found there (a misplaced secret must not end up in a terminal or a log).
import { readFileSync } from 'node:fs';
import { isMap, isScalar, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { DsoError, fsReason } from '../errors.ts';
import * as v from 'valibot';
import { agentSchema, defaultsSchema, type AgentConfig, type DefaultsConfig } from './agent.ts';
import { issueProblems, SAFE_MESSAGES } from './issues.ts';
import { providersSection, type ProviderSettings } from './providers.ts';

export interface DsoConfig {
  /** The file it came from, for messages. */
  path: string;
  providers: Map<string, ProviderSettings>;
  /** agent.cache.max_secret_size: the largest value DSO accepts from any provider. */
  maxSecretBytes: number;
  agent: AgentConfig;
  defaults: DefaultsConfig;
}

/** The default and ceiling of a secret's size, the seed's max_secret_size (10 MiB). */
export const DEFAULT_MAX_SECRET_BYTES = 10 * 1024 * 1024;

export interface ConfigProblem {
  /** Dotted key path, like providers.vault.auth.method. */
  path: string;
  line?: number;
  column?: number;
  message: string;
}

/** Reads and validates `path`. Throws CONFIG_NOT_FOUND or CONFIG_INVALID (all problems listed). */
export async function loadConfig(path: string): Promise<DsoConfig> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new DsoError('CONFIG_NOT_FOUND', `no configuration file at ${path}`, { hint: 'create it (see docs/providers.md) or point DSO_CONFIG at yours' });
    throw new DsoError('CONFIG_INVALID', `cannot read ${path}: ${fsReason(e)}`, { hint: 'check the file\'s permissions' });
  }
  return parseConfig(text, path);
}

/** Validates the text of a dso.yaml; `path` is only used in messages. */
export async function parseConfig(text: string, path: string): Promise<DsoConfig> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const problems: ConfigProblem[] = [];
  for (const err of doc.errors) {
    const pos = lines.linePos(err.pos[0]);
    // YAML's own messages can quote the offending text: keep only the kind of error.
    problems.push({ path: '', line: pos.line, column: pos.col, message: `YAML syntax error (${err.code.toLowerCase().replaceAll('_', ' ')})` });
  }
  if (problems.length > 0) throw invalid(path, problems);

  let root: unknown;
  try {
    root = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch {
    // The yaml library refuses an alias bomb here, with a ReferenceError of its own.
    throw invalid(path, [{ path: '', line: 1, column: 1, message: 'YAML aliases expand too much (more than 100 uses of an anchor)' }]);
  }
  const locate = (keys: ReadonlyArray<string | number>) => position(doc, lines, keys);
  if (typeof root !== 'object' || root === null || Array.isArray(root)) {
    throw invalid(path, [{ path: '', line: 1, column: 1, message: 'the file must be a mapping with keys like providers: and agent:' }]);
  }
  const top = root as Record<string, unknown>;
  for (const key of Object.keys(top)) {
    if (!['providers', 'agent', 'defaults'].includes(key)) {
      problems.push({ path: key, ...locate([key]), message: `unknown top-level key; the keys are providers, agent and defaults` });
    }
  }

  const report = (keys: Array<string | number>, message: string) => problems.push({ path: keys.join('.'), ...locate(keys), message });
  const providers = await providersSection(top.providers, report);
  const section = <T>(key: string, schema: v.GenericSchema<unknown, T>): T | undefined => {
    const r = v.safeParse(schema, top[key] ?? {}, SAFE_MESSAGES);
    if (r.success) return r.output;
    for (const p of issueProblems(r.issues, [key])) report(p.keys, p.message);
    return undefined;
  };
  const agent = section('agent', agentSchema);
  const defaults = section('defaults', defaultsSchema);
  if (problems.length > 0 || !agent || !defaults) throw invalid(path, problems);
  return { path, providers, maxSecretBytes: agent.cache.max_secret_size, agent, defaults };
}

/** Line and column (1-based) of the node at `keys`, else of the nearest ancestor that exists. */
function position(doc: Document, lines: LineCounter, keys: ReadonlyArray<string | number>): { line?: number; column?: number } {
  for (let n = keys.length; n >= 0; n--) {
    const path = keys.slice(0, n);
    let node: Node | null | undefined;
    if (path.length === 0) node = doc.contents as Node | null;
    else {
      // For a key, point at the key itself rather than its value.
      const parent = path.length === 1 ? doc.contents : doc.getIn(path.slice(0, -1), true);
      if (isMap(parent)) {
        const pair = parent.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === path[path.length - 1]);
        node = (pair?.key as Node | undefined) ?? undefined;
      } else {
        node = doc.getIn(path, true) as Node | undefined;
      }
    }
    const start = node?.range?.[0];
    if (start !== undefined) {
      const pos = lines.linePos(start);
      return { line: pos.line, column: pos.col };
    }
  }
  return {};
}

/** CONFIG_INVALID with the problems as data, for `config validate --json`. */
export class ConfigInvalidError extends DsoError {
  readonly problems: ConfigProblem[];
  constructor(message: string, problems: ConfigProblem[], hint: string) {
    super('CONFIG_INVALID', message, { hint });
    this.problems = problems;
  }
}

function invalid(path: string, problems: ConfigProblem[]): DsoError {
  const sorted = [...problems].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
  const lines = sorted.map((p) => `  ${path}${p.line === undefined ? '' : `:${p.line}:${p.column}`}: ${p.path ? `${p.path}: ` : ''}${p.message}`);
  return new ConfigInvalidError(`${path} is not valid (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${lines.join('\n')}`, sorted, 'fix the lines above; docs/configuration.md describes every key');
}
