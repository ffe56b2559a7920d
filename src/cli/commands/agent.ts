// `dso agent` (also installed as `dso-agent`): runs the long-lived agent in the foreground, as
// systemd expects. Only wires options and signals; src/agent/daemon.ts does the work.
import { configCandidates, findConfigPath } from '../../config/find.ts';
import { DsoError } from '../../errors.ts';
import type { CompletionSpec } from '../completion.ts';
import type { Cli } from '../context.ts';
import { parseFlags, type FlagSpec } from '../flags.ts';
import { commandHelp, wantsHelp } from '../help.ts';

const FLAGS: FlagSpec[] = [
  { name: 'config', short: 'c', type: 'string', valueName: 'FILE', description: 'dso.yaml to use (default: $DSO_CONFIG, /etc/dso/dso.yaml, ./dso.yaml)' },
  { name: 'socket', type: 'string', valueName: 'PATH', description: 'Serve the API on PATH instead of agent.socket.path' },
  { name: 'metrics-address', type: 'string', valueName: 'HOST:PORT', description: 'Serve /metrics here (HOST:PORT or unix:/PATH) instead of agent.metrics.address ("off" to disable)' },
  { name: 'state-dir', type: 'string', valueName: 'DIR', description: 'Keep rotation state here instead of agent.state_dir' },
];

export const completion: CompletionSpec = { flags: FLAGS };

export async function run(cli: Cli, argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    cli.stdout.write(
      commandHelp({
        usage: `${cli.prog} agent [--config FILE] [--socket PATH] [--metrics-address HOST:PORT|unix:/PATH|off] [--state-dir DIR]`,
        summary: 'Run the DSO agent in the foreground (systemd runs it this way: see `system setup`).',
        details: 'The agent resolves provider secrets for `docker dso up` over its unix socket, with a cache,\nand serves Prometheus metrics. Logs are JSON lines on stderr. SIGHUP reloads dso.yaml;\nSIGTERM stops it after the requests in flight, zeroing cached values.',
        flags: FLAGS,
      }),
    );
    return 0;
  }
  const { flags, positionals } = parseFlags(argv, FLAGS, 'agent');
  if (positionals.length > 0) throw new DsoError('USAGE', `agent takes no arguments (got "${positionals[0]}")`);
  const configPath = (flags.config as string | undefined) ?? findConfigPath(cli.env, cli.cwd);
  if (configPath === undefined) {
    throw new DsoError('CONFIG_NOT_FOUND', `the agent needs a dso.yaml (looked for ${configCandidates(cli.env, cli.cwd).join(' and ')})`, {
      hint: `write one (\`${cli.prog} config edit --file /etc/dso/dso.yaml\`), or run \`${cli.prog} bootstrap agent\``,
    });
  }
  const { startAgent } = await import('../../agent/daemon.ts');
  // Signals are taken before the agent starts: its socket exists before startAgent returns, so
  // a SIGTERM sent as soon as the socket appears (systemd stopping a unit that just started)
  // must stop it in order, removing the socket, not kill the process with Bun's default action.
  let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
  let stopRequested: string | undefined;
  let reloadRequested = false;
  const onStop = (signal: string) => () => {
    if (agent) void agent.stop(signal);
    else stopRequested ??= signal;
  };
  process.on('SIGTERM', onStop('SIGTERM'));
  process.on('SIGINT', onStop('SIGINT'));
  process.on('SIGHUP', () => {
    if (agent) void agent.reload();
    else reloadRequested = true;
  });
  agent = await startAgent({
    configPath,
    env: cli.env,
    ...(flags.socket ? { socketPath: flags.socket as string } : {}),
    ...(flags['metrics-address'] ? { metricsAddress: flags['metrics-address'] as string } : {}),
    ...(flags['state-dir'] ? { stateDir: flags['state-dir'] as string } : {}),
    write: (line) => cli.stderr.write(line),
  });
  if (stopRequested !== undefined) void agent.stop(stopRequested);
  else if (reloadRequested) void agent.reload();
  await agent.stopped;
  return 0;
}
