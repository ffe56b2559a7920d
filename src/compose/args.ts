// Splits a Compose command line into the global flags DSO must understand (files, project,
// profiles, env files) and the rest, which is handed to Compose untouched.
import { DsoError } from '../errors.ts';

export interface ComposeGlobals {
  files: string[];
  projectName?: string;
  projectDirectory?: string;
  profiles: string[];
  envFiles: string[];
  /** Other global flags (e.g. --progress plain, --dry-run), forwarded as given. */
  other: string[];
  /** DSO's --strict: near-miss references (see near-miss.ts) are errors. Not forwarded to Compose. */
  strict?: boolean;
}

const VALUE_FLAGS: Record<string, keyof ComposeGlobals | 'other'> = {
  '-f': 'files',
  '--file': 'files',
  '-p': 'projectName',
  '--project-name': 'projectName',
  '--project-directory': 'projectDirectory',
  '--profile': 'profiles',
  '--env-file': 'envFiles',
  '--ansi': 'other',
  '--progress': 'other',
  '--parallel': 'other',
};
const BOOL_FLAGS = new Set(['--compatibility', '--dry-run', '--all-resources', '--verbose', '--no-ansi']);

function emptyGlobals(): ComposeGlobals {
  return { files: [], profiles: [], envFiles: [], other: [] };
}

/** Tries to read one global flag at argv[i]; returns how many items it took, or 0. */
function takeGlobal(argv: readonly string[], i: number, g: ComposeGlobals): number {
  const arg = argv[i]!;
  if (arg === '--strict') {
    g.strict = true;
    return 1;
  }
  if (BOOL_FLAGS.has(arg)) {
    g.other.push(arg);
    return 1;
  }
  let flag = arg;
  let value: string | undefined;
  let used = 2;
  const eq = arg.indexOf('=');
  if (arg.startsWith('--') && eq !== -1) {
    flag = arg.slice(0, eq);
    value = arg.slice(eq + 1);
    used = 1;
  } else if (/^-[fp].+/.test(arg)) {
    flag = arg.slice(0, 2);
    value = arg.slice(2);
    used = 1;
  }
  const field = VALUE_FLAGS[flag];
  if (!field) return 0;
  if (value === undefined) value = argv[i + 1];
  if (value === undefined) throw new DsoError('USAGE', `compose flag ${flag} needs a value`);
  switch (field) {
    case 'files':
    case 'profiles':
    case 'envFiles':
      g[field].push(value);
      break;
    case 'projectName':
    case 'projectDirectory':
      g[field] = value;
      break;
    default:
      g.other.push(`${flag}=${value}`);
  }
  return used;
}

/**
 * For `dso up ARGS` and `dso down ARGS`: global flags may appear anywhere (neither `up` nor
 * `down` has flags of its own that collide with them); everything else belongs to the command.
 */
export function splitAnywhere(argv: readonly string[]): { globals: ComposeGlobals; rest: string[] } {
  const globals = emptyGlobals();
  const rest: string[] = [];
  for (let i = 0; i < argv.length; ) {
    if (argv[i] === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    const n = takeGlobal(argv, i, globals);
    if (n === 0) rest.push(argv[i++]!);
    else i += n;
  }
  return { globals, rest };
}

/**
 * For `dso compose [GLOBAL FLAGS] COMMAND [ARGS]`: global flags come before the command, exactly
 * as Compose reads them, so `compose run -p 80:80` keeps `-p` as run's publish flag.
 */
export function splitLeading(argv: readonly string[]): { globals: ComposeGlobals; command?: string; rest: string[] } {
  const globals = emptyGlobals();
  let i = 0;
  while (i < argv.length) {
    const n = takeGlobal(argv, i, globals);
    if (n === 0) break;
    i += n;
  }
  const command = argv[i];
  if (command !== undefined && command.startsWith('-')) {
    if (command === '--help' || command === '-h') return { globals, command, rest: argv.slice(i + 1) };
    throw new DsoError('USAGE', `unknown or misplaced compose flag ${command}`, {
      hint: 'put Compose global flags (-f, -p, --profile, --env-file, --project-directory) before the command',
    });
  }
  return { globals, command, rest: argv.slice(i + 1) };
}

/** The global flags to give Compose once DSO feeds it the resolved model on stdin. */
export function forwardedGlobals(g: ComposeGlobals, projectName: string, projectDirectory: string): string[] {
  const out = ['-p', projectName, '--project-directory', projectDirectory];
  for (const p of g.profiles) out.push('--profile', p);
  out.push(...g.other);
  return out;
}

/** The global flags for loading the model exactly as the user would see it. */
export function loadingGlobals(g: ComposeGlobals): string[] {
  const out: string[] = [];
  for (const f of g.files) out.push('-f', f);
  if (g.projectName) out.push('-p', g.projectName);
  if (g.projectDirectory) out.push('--project-directory', g.projectDirectory);
  for (const p of g.profiles) out.push('--profile', p);
  for (const e of g.envFiles) out.push('--env-file', e);
  return out;
}
