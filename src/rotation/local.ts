// Rotation run by the CLI itself (Local Mode): after `secret set`, or for `rotate NAME`. Values
// come from the local vault (and the providers of ./dso.yaml); the state lives in
// $DSO_HOME/state. Unfinished rotations of an earlier run are recovered first.
import { join } from 'node:path';
import { existsSync, realpathSync } from 'node:fs';
import { dsoHome, vaultPath, type Cli } from '../cli/context.ts';
import { vaultIdOf } from '../vault/vault-id.ts';
import { findConfigPath } from '../config/find.ts';
import type { DsoConfig } from '../config/load.ts';
import { connectEngine } from '../docker/engine.ts';
import { DsoError } from '../errors.ts';
import { SecretBytes, wipeAll } from '../secrets/secret-bytes.ts';
import type { LocalVault } from '../vault/vault.ts';
import type { RotationOutcome } from './execute.ts';
import type { HealthSettings } from './health.ts';
import { loadManaged, sameSource } from './inventory.ts';
import { formatPlan, planRotation, type PlanDefaults, type RotationPlan } from './plan.ts';
import { recoverRotations } from './recover.ts';
import { runPlan } from './run.ts';
import { RotationState } from './state.ts';

export interface LocalRotation {
  /** The secret's canonical id. */
  id: string;
  dryRun: boolean;
  json: boolean;
  /** An open vault to read from (secret set has one); else it is opened when needed. */
  vault?: LocalVault;
  openVault(): Promise<LocalVault>;
}

export interface LocalRotationResult {
  plan: RotationPlan;
  outcomes: RotationOutcome[];
}

export async function rotateLocally(cli: Cli, o: LocalRotation): Promise<LocalRotationResult> {
  const engine = await connectEngine(cli.env);
  const containers = await loadManaged(engine);
  const config = await optionalConfig(cli);
  const source = {
    ...(!o.id.includes(':') && existsSync(vaultPath(cli.env)) ? { vaultId: vaultIdOf(vaultPath(cli.env)) } : {}),
    ...(config ? { config: realpathSync(config.path) } : {}),
  };
  const users = containers.filter((c) => sameSource(c, o.id, source));
  const defaults: PlanDefaults = {
    strategy: config?.defaults.rotation.strategy ?? config?.agent.rotation.strategy ?? 'restart',
    signal: config?.defaults.rotation.signal ?? 'SIGHUP',
  };
  const plan = planRotation(users, new Map(users.map((c) => [c.id, [o.id]])), defaults);
  if (o.dryRun || plan.rotations.length === 0) return { plan, outcomes: [] };

  const state = RotationState.open(join(dsoHome(cli.env), 'state'));
  // Without a dso.yaml, the defaults of its agent section.
  const agent = config?.agent ?? (await import('../config/agent.ts')).defaultAgentConfig();
  const health: HealthSettings = { timeoutMs: agent.health_check.timeout, intervalMs: agent.health_check.interval, retries: agent.health_check.retries };
  const log = (level: string, msg: string, fields: Record<string, unknown> = {}) => {
    if (level !== 'info' && !o.json) cli.stderr.write(`${level}: ${msg}${fields.reason ? `: ${String(fields.reason)}` : ''}\n`);
  };
  for (const r of await recoverRotations({ engine, state, health, log })) {
    cli.stderr.write(`Recovered an interrupted rotation of ${r.container}: ${r.reason}\n`);
  }

  let vault = o.vault;
  let opened = false;
  let providers: import('../providers/resolver.ts').ProviderSet | undefined;
  try {
    const resolve = async (ids: string[]) => {
      const values = new Map<string, SecretBytes>();
      try {
        const remote = ids.filter((id) => id.includes(':'));
        const local = ids.filter((id) => !id.includes(':'));
        if (local.length > 0) {
          if (!vault) {
            vault = await o.openVault();
            opened = true;
          }
          for (const id of local) {
            if (!vault.has(id)) throw new DsoError('SECRET_NOT_FOUND', `secret ${id} is not in the local vault`, { hint: `store it with \`${cli.prog} secret set ${id}\`` });
            values.set(id, vault.get(id));
          }
        }
        if (remote.length > 0) {
          if (!config) throw new DsoError('CONFIG_NOT_FOUND', `rotating a container that uses ${remote.join(', ')} needs the dso.yaml that configures their providers`, { hint: 'run it from the project directory, or set DSO_CONFIG' });
          const { ProviderSet, resolveProviderSecrets } = await import('../providers/resolver.ts');
          const { secretIdFromCanonical } = await import('../compose/references.ts');
          providers ??= new ProviderSet(config, { env: cli.env });
          const got = await resolveProviderSecrets(providers, remote.map((id) => ({ id: secretIdFromCanonical(id), uses: ['rotation'] })), { consequence: 'nothing was rotated' });
          for (const [id, v] of got) values.set(id, v);
        }
        return { values, markers: new Map<string, string>() };
      } catch (e) {
        wipeAll(...values.values());
        throw e;
      }
    };
    const outcomes = await runPlan(
      { engine, state, resolve, health, timeoutMs: agent.rotation.timeout, log, ...(o.json ? {} : { progress: (line: string) => cli.stderr.write(`${line}\n`) }) },
      plan,
      users,
      { concurrency: agent.rotation.concurrency, jitterMs: 0 },
    );
    return { plan, outcomes };
  } finally {
    if (opened) vault?.close();
    await providers?.close();
  }
}

async function optionalConfig(cli: Cli): Promise<DsoConfig | undefined> {
  const path = findConfigPath(cli.env, cli.cwd);
  if (!path) return undefined;
  const { loadConfig } = await import('../config/load.ts');
  return loadConfig(path);
}

/** What `rotate` and `secret set` print when done, and whether all went well. */
export function summarise(result: LocalRotationResult, subject: string): { text: string; ok: boolean } {
  if (result.plan.rotations.length === 0) return { text: formatPlan(result.plan, subject), ok: true };
  const done = result.outcomes.filter((x) => x.status === 'done').length;
  const lines = [`Rotated ${done} of ${result.plan.rotations.length} container${result.plan.rotations.length === 1 ? '' : 's'} using ${subject}.`];
  for (const x of result.outcomes.filter((y) => y.status !== 'done')) lines.push(`  ${x.container}: ${x.status.replace('_', ' ')}: ${x.reason ?? ''}`);
  return { text: `${lines.join('\n')}\n`, ok: done === result.plan.rotations.length };
}
