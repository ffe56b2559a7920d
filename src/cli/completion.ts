// Shell completion: the answers to cobra's `__complete` protocol, which the Docker CLI's own
// completion (`docker completion bash|zsh|fish`) asks a plugin for (`docker-dso __complete dso
// ARGS... WORD`), and which the scripts of `dso completion SHELL` ask the `dso` binary for.
// An answer is one candidate per line (`value<TAB>description`), then `:DIRECTIVE`.
import { COMMANDS, type CommandEntry } from './commands.ts';
import type { Cli } from './context.ts';
import type { FlagSpec } from './flags.ts';
import { invokedAsPlugin } from './plugin.ts';

/** The hidden commands of the protocol (cobra's names), with and without descriptions. */
export const COMPLETE_COMMAND = '__complete';
export const COMPLETE_NO_DESC_COMMAND = '__completeNoDesc';

/** cobra's ShellCompDirective bits. */
export const Directive = {
  default: 0, // the shell may complete file names when there is no candidate
  error: 1,
  noSpace: 2,
  noFileComp: 4,
  filterFileExt: 8,
  filterDirs: 16,
  keepOrder: 32,
} as const;

/** What a command can be completed with; command modules export it as `completion`. */
export interface CompletionSpec {
  flags?: readonly FlagSpec[];
  /** Subcommands (`secret set`, `compose logs`), each with its own flags and arguments. */
  subcommands?: Readonly<Record<string, { summary?: string; flags?: readonly FlagSpec[]; args?: CompletionSpec['args'] }>>;
  /** Positional arguments (after the subcommand): these words, Compose service names, files, or nothing. */
  args?: readonly string[] | 'services' | 'files' | 'none';
}

export interface Candidate {
  value: string;
  description?: string;
}

export interface Completion {
  candidates: Candidate[];
  directive: number;
}

export interface CompletionContext {
  commands: readonly CommandEntry[];
  /** A command's spec, loaded with its module. */
  specOf(entry: CommandEntry): Promise<CompletionSpec | undefined>;
  /** Service names of the Compose project the command line points at (with its -f flags). */
  services(args: readonly string[]): Promise<string[]>;
}

/**
 * Answers `__complete ARGS... WORD` (or `__completeNoDesc`): from the Docker CLI as
 * `docker-dso __complete dso ARGS... WORD`, from `dso completion SHELL`'s scripts without `dso`.
 */
export async function answerCompletion(cli: Omit<Cli, 'prog'>, argv: readonly string[], argv0: string): Promise<number> {
  const [request, ...rest] = argv;
  const words = invokedAsPlugin(argv0, rest, cli.env) ? rest.slice(1) : rest;
  const toComplete = words.at(-1) ?? '';
  const ctx: CompletionContext = {
    commands: COMMANDS,
    specOf: async (entry) => {
      const spec = (await entry.load()).completion;
      return typeof spec === 'function' ? spec() : spec;
    },
    services: (args) => composeServices(cli, args),
  };
  const result = await complete(ctx, words.slice(0, -1), toComplete);
  cli.stdout.write(renderCompletion(result, request === COMPLETE_COMMAND));
  return 0;
}

/** The services of the compose files a command line points at (its -f flags, else discovery). */
async function composeServices(cli: Omit<Cli, 'prog'>, args: readonly string[]): Promise<string[]> {
  try {
    const { splitAnywhere } = await import('../compose/args.ts');
    const { discoverComposeFiles, serviceNames } = await import('../compose/files.ts');
    const { globals } = splitAnywhere(args.filter((a) => a !== '--'));
    return serviceNames(discoverComposeFiles(globals, cli.cwd, cli.env));
  } catch {
    return [];
  }
}

const HELP_FLAG: FlagSpec = { name: 'help', short: 'h', type: 'boolean', description: 'Show this help' };

/**
 * The candidates for `toComplete`, the word being typed, after `args`, the words before it (the
 * command name first). Never throws: a broken spec or file completes to nothing.
 */
export async function complete(ctx: CompletionContext, args: readonly string[], toComplete: string): Promise<Completion> {
  const none: Completion = { candidates: [], directive: Directive.noFileComp };
  const [name, ...rest] = args;
  if (name === undefined || name === 'help') {
    if (name === 'help' && rest.length > 0) return none;
    if (toComplete.startsWith('-')) return words([{ value: '--help', description: 'Show help' }, { value: '--version', description: 'Print the version' }], toComplete);
    return words([...ctx.commands.map((c) => ({ value: c.name, description: c.summary })), ...(name === undefined ? [{ value: 'help', description: 'Show help for a command' }] : [])], toComplete);
  }
  const entry = ctx.commands.find((c) => c.name === name);
  if (!entry) return none;
  let spec: CompletionSpec | undefined;
  try {
    spec = await ctx.specOf(entry);
  } catch {
    return none;
  }
  if (!spec) return none;

  // Walk the words: find the subcommand, the flags already given, and whether the last word
  // is a flag still waiting for its value.
  let flags = [...(spec.flags ?? [])];
  let sub: string | undefined;
  const positionals: string[] = [];
  const given = new Set<string>();
  let pending: FlagSpec | undefined;
  for (const word of rest) {
    if (pending) {
      pending = undefined;
      continue;
    }
    if (word === '--') break;
    if (word.startsWith('-') && word !== '-') {
      const flag = findFlag(flags, word);
      if (flag) {
        given.add(flag.name);
        if (flag.type === 'string' && !word.includes('=') && !/^-[a-zA-Z]./.test(word)) pending = flag;
      }
      continue;
    }
    if (spec.subcommands && sub === undefined) {
      sub = word;
      flags = [...(spec.subcommands[word]?.flags ?? [])];
      continue;
    }
    positionals.push(word);
  }
  if (rest.includes('--')) return { candidates: [], directive: Directive.default };

  if (pending) return await valuesOf(pending, toComplete, '', ctx, rest);
  if (toComplete.startsWith('--') && toComplete.includes('=')) {
    const eq = toComplete.indexOf('=');
    const flag = findFlag(flags, toComplete.slice(0, eq));
    if (!flag || flag.type !== 'string') return none;
    return await valuesOf(flag, toComplete.slice(eq + 1), toComplete.slice(0, eq + 1), ctx, rest);
  }
  if (toComplete.startsWith('-')) {
    const offered = [...flags, HELP_FLAG].filter((f) => f.multiple || !given.has(f.name));
    return words(
      offered.map((f) => ({ value: `--${f.name}`, description: f.description })),
      toComplete,
    );
  }
  if (spec.subcommands && sub === undefined) {
    return words(Object.entries(spec.subcommands).map(([value, s]) => ({ value, ...(s.summary ? { description: s.summary } : {}) })), toComplete);
  }
  const kind = (spec.subcommands ? spec.subcommands[sub ?? '']?.args : spec.args) ?? 'none';
  if (kind === 'files') return { candidates: [], directive: Directive.default };
  if (kind === 'services') return words((await ctx.services(rest)).filter((s) => !positionals.includes(s)).map((value) => ({ value })), toComplete);
  if (kind === 'none') return none;
  return words(kind.map((value) => ({ value })), toComplete);
}

function findFlag(flags: readonly FlagSpec[], word: string): FlagSpec | undefined {
  if (word.startsWith('--')) {
    const name = word.slice(2).split('=')[0];
    return flags.find((f) => f.name === name);
  }
  return flags.find((f) => f.short !== undefined && word.slice(1, 2) === f.short);
}

/** A string flag's value: its choices, Compose services, files, directories, or nothing to offer. */
async function valuesOf(flag: FlagSpec, typed: string, prefix: string, ctx: CompletionContext, args: readonly string[]): Promise<Completion> {
  if (flag.choices) return words(flag.choices.map((c) => ({ value: `${prefix}${c}` })), `${prefix}${typed}`);
  const kind = flag.valueName ?? '';
  if (kind === 'SERVICE') return words((await ctx.services(args)).map((s) => ({ value: `${prefix}${s}` })), `${prefix}${typed}`);
  if (kind === 'DIR') return { candidates: [], directive: Directive.filterDirs };
  if (kind === 'FILE' || kind === 'PATH') return { candidates: [], directive: Directive.default };
  return { candidates: [], directive: Directive.noFileComp };
}

function words(candidates: Candidate[], typed: string): Completion {
  return { candidates: candidates.filter((c) => c.value.startsWith(typed)), directive: Directive.noFileComp };
}

/** The protocol's answer: candidates, one per line, then `:DIRECTIVE`. */
export function renderCompletion(c: Completion, descriptions: boolean): string {
  const lines = c.candidates.map((x) => {
    // One line per candidate, so no tab or newline inside; the shells show the first sentence.
    const value = x.value.replace(/[\t\n]/g, ' ');
    const description = descriptions && x.description ? firstSentence(x.description) : '';
    return description ? `${value}\t${description}` : value;
  });
  return `${[...lines, `:${c.directive}`].join('\n')}\n`;
}

function firstSentence(text: string): string {
  const line = text.replace(/[\t\n]+/g, ' ').trim();
  const end = line.search(/[^.]\.\s/);
  const sentence = end === -1 ? line : line.slice(0, end + 1);
  return /[^.]\.$/.test(sentence) ? sentence.slice(0, -1) : sentence;
}
