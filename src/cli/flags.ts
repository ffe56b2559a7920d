// A small, strict flag parser for DSO's own commands: unknown flags are errors, values are never
// guessed, and `--` ends flag parsing. Compose pass-through commands do not use it.
import { DsoError } from '../errors.ts';
import { closest, orList } from './suggest.ts';

export interface FlagSpec {
  name: string; // long name without dashes
  short?: string; // single letter
  type: 'boolean' | 'string';
  multiple?: boolean;
  description: string;
  valueName?: string;
  /** The values a string flag takes, for shell completion (it does not validate them). */
  choices?: readonly string[];
}

export interface ParsedFlags {
  flags: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[], command: string): ParsedFlags {
  const flags: ParsedFlags['flags'] = {};
  const positionals: string[] = [];
  const byLong = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short!, s]));

  const set = (spec: FlagSpec, value: string | boolean) => {
    if (spec.multiple && typeof value === 'string') {
      const prev = flags[spec.name];
      flags[spec.name] = [...(Array.isArray(prev) ? prev : []), value];
    } else {
      flags[spec.name] = value;
    }
  };

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    let spec: FlagSpec | undefined;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq === -1 ? undefined : arg.slice(eq + 1);
      spec = byLong.get(name);
      if (!spec) throw unknownFlag(`--${name}`, command, closest(name, [...byLong.keys()]).map((m) => `--${m}`));
    } else if (arg.startsWith('-') && arg.length > 1) {
      spec = byShort.get(arg.slice(1, 2));
      if (!spec) throw unknownFlag(arg.slice(0, 2), command);
      if (arg.length > 2) inline = arg.slice(2);
    } else {
      positionals.push(arg);
      continue;
    }
    if (spec.type === 'boolean') {
      if (inline !== undefined) {
        throw new DsoError('USAGE', `flag --${spec.name} of \`dso ${command}\` takes no value`);
      }
      set(spec, true);
    } else {
      const value = inline ?? argv[++i];
      if (value === undefined) {
        throw new DsoError('USAGE', `flag --${spec.name} of \`dso ${command}\` needs a value`, {
          hint: `usage: --${spec.name} ${spec.valueName ?? 'VALUE'}`,
        });
      }
      set(spec, value);
    }
  }
  return { flags, positionals };
}

function unknownFlag(flag: string, command: string, meant: string[] = []): DsoError {
  return new DsoError('USAGE', `unknown flag ${flag} for \`dso ${command}\``, {
    hint: meant.length > 0 ? `did you mean ${orList(meant)}?` : `run \`docker dso ${command} --help\` to see its flags`,
  });
}
