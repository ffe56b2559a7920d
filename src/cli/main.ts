// The entry point of the one `dso` binary (also installed as the `docker-dso` CLI plugin):
// builds the CLI context, dispatches to a lazily loaded command, and maps errors to exit codes.
import { DsoError } from '../errors.ts';
import { makeNonDumpable } from '../system/process-guard.ts';
import { COMMANDS, findCommand } from './commands.ts';
import { COMPLETE_COMMAND, COMPLETE_NO_DESC_COMMAND, answerCompletion } from './completion.ts';
import type { Cli } from './context.ts';
import { topLevelHelp } from './help.ts';
import { formatError } from './output.ts';
import { PLUGIN_METADATA_COMMAND, invokedAsPlugin, pluginMetadata } from './plugin.ts';
import { COMPOSE_COMMANDS, closest, orList } from './suggest.ts';

export async function main(argv: string[], cli: Omit<Cli, 'prog'>, argv0: string): Promise<number> {
  if (argv[0] === PLUGIN_METADATA_COMMAND) {
    cli.stdout.write(pluginMetadata());
    return 0;
  }
  if (argv[0] === COMPLETE_COMMAND || argv[0] === COMPLETE_NO_DESC_COMMAND) return answerCompletion(cli, argv, argv0);
  const asPlugin = invokedAsPlugin(argv0, argv, cli.env);
  // Installed (linked) as `dso-agent`, the binary is the agent: what systemd units run.
  const asAgent = !asPlugin && (argv0.split('/').pop() ?? '') === 'dso-agent';
  const args = asPlugin ? argv.slice(1) : asAgent ? ['agent', ...argv] : argv;
  const ctx: Cli = { ...cli, prog: asPlugin ? 'docker dso' : 'dso' };
  try {
    const [name, ...rest] = args;
    if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
      const target = name === 'help' ? rest[0] : undefined;
      if (target === undefined) {
        ctx.stdout.write(topLevelHelp(ctx.prog));
        return 0;
      }
      return await dispatch(ctx, target, ['--help']);
    }
    if (name === '--version' || name === '-v') return await dispatch(ctx, 'version', []);
    return await dispatch(ctx, name, rest);
  } catch (e) {
    const { text, exitCode } = formatError(ctx, e);
    ctx.stderr.write(text);
    return exitCode;
  }
}

async function dispatch(cli: Cli, name: string, argv: string[]): Promise<number> {
  const entry = findCommand(name);
  if (!entry) throw unknownCommand(cli, name);
  const command = await entry.load();
  return command.run(cli, argv);
}

/** An unknown command, with what was probably meant: a DSO command, or a Compose one under `compose`. */
function unknownCommand(cli: Cli, name: string): DsoError {
  const see = `run \`${cli.prog} --help\` to see the commands`;
  if (COMPOSE_COMMANDS.includes(name)) {
    return new DsoError('USAGE', `unknown command "${name}"`, { hint: `\`${name}\` is a Compose command: run \`${cli.prog} compose ${name}\`` });
  }
  const dsoCommands = COMMANDS.map((c) => c.name);
  const meant = closest(name, [...dsoCommands, ...COMPOSE_COMMANDS]).map((m) => `\`${cli.prog} ${dsoCommands.includes(m) ? '' : 'compose '}${m}\``);
  return new DsoError('USAGE', `unknown command "${name}"`, { hint: meant.length > 0 ? `did you mean ${orList(meant)}?` : see });
}

/** The hidden argument that makes this binary a provider child process (`isolation: process`). */
export const PROVIDER_PROCESS_ARG = '__provider-process';

// First thing, before a provider can start or a credential is read: no other process, however
// it is related to DSO, may read this one's environment or memory (src/system/process-guard.ts).
const guarded = import.meta.main ? makeNonDumpable() : undefined;

if (import.meta.main && process.argv[2] === PROVIDER_PROCESS_ARG) {
  // Not a command: DSO starts itself this way with an explicit environment, and speaks frames.
  // runProviderProcess checks the guard again and refuses to serve without it.
  void Promise.all([import('../providers/process-main.ts'), import('../providers/registry.ts')]).then(([{ runProviderProcess }, registry]) =>
    runProviderProcess({ loadDefinition: registry.loadDefinition, loadClient: registry.loadClient }),
  );
} else if (import.meta.main) {
  if (guarded && !guarded.ok && !guarded.unsupported) {
    process.stderr.write(`dso: warning: ${guarded.why}; other processes of this user can read DSO's environment and memory\n`);
  }
  const out = (stream: NodeJS.WriteStream) => ({
    write: (chunk: string | Uint8Array) => void stream.write(chunk),
    isTTY: Boolean(stream.isTTY),
  });
  void main(
    process.argv.slice(2),
    {
      env: process.env,
      cwd: process.cwd(),
      stdout: out(process.stdout),
      stderr: out(process.stderr),
      stdinIsTTY: Boolean(process.stdin.isTTY),
      readStdin: async () => new Uint8Array(await Bun.stdin.arrayBuffer()),
    },
    process.argv0,
  ).then((code) => {
    process.exitCode = code;
  });
}
