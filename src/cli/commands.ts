// The command table: names, one-line summaries for help, and lazy loaders, so `dso version`
// never pays for dockerode or the crypto code it does not use.
import type { CompletionSpec } from './completion.ts';
import type { Cli } from './context.ts';

export interface Command {
  run(cli: Cli, argv: string[]): Promise<number>;
  /** What shell completion offers after the command's name (see completion.ts). */
  completion?: CompletionSpec | (() => Promise<CompletionSpec>);
}

export interface CommandEntry {
  name: string;
  summary: string;
  group: 'Secrets' | 'Compose' | 'Other';
  load(): Promise<Command>;
}

export const COMMANDS: readonly CommandEntry[] = [
  { name: 'init', group: 'Secrets', summary: 'Create the encrypted local vault (~/.dso/vault.enc)', load: () => import('./commands/init.ts') },
  { name: 'bootstrap', group: 'Secrets', summary: 'Set up DSO: `bootstrap local` (the local vault) or `bootstrap agent` (a host)', load: () => import('./commands/bootstrap.ts') },
  { name: 'secret', group: 'Secrets', summary: 'Set, get, list and remove secrets in the local vault', load: () => import('./commands/secret.ts') },
  { name: 'up', group: 'Compose', summary: 'Resolve dso:// and dsofile:// secrets and run `compose up`', load: () => import('./commands/up.ts') },
  { name: 'down', group: 'Compose', summary: 'Run `compose down` and remove DSO secret storage', load: () => import('./commands/down.ts') },
  { name: 'compose', group: 'Compose', summary: 'Run any Compose command with secrets resolved', load: () => import('./commands/compose.ts') },
  { name: 'rotate', group: 'Secrets', summary: 'Give every container that uses a secret its current value now (--dry-run to plan)', load: () => import('./commands/rotate.ts') },
  { name: 'status', group: 'Other', summary: 'Show the mode, agent, providers, cache and managed containers', load: () => import('./commands/status.ts') },
  { name: 'doctor', group: 'Other', summary: 'Check this host: Docker, Compose, vault or agent, providers, permissions', load: () => import('./commands/doctor.ts') },
  { name: 'agent', group: 'Other', summary: 'Run the DSO agent (Cloud Mode) in the foreground', load: () => import('./commands/agent.ts') },
  { name: 'system', group: 'Other', summary: 'Manage the agent as a systemd service: setup, enable, status, logs...', load: () => import('./commands/system.ts') },
  { name: 'config', group: 'Other', summary: 'Show, validate and edit dso.yaml', load: () => import('./commands/config.ts') },
  { name: 'completion', group: 'Other', summary: 'Print a shell completion script: bash, zsh or fish', load: () => import('./commands/completion.ts') },
  { name: 'version', group: 'Other', summary: 'Print the DSO version', load: () => import('./commands/version.ts') },
];

export function findCommand(name: string): CommandEntry | undefined {
  return COMMANDS.find((c) => c.name === name);
}
