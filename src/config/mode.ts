// Which mode the CLI runs in, decided in the seed's order:
//   1. --mode local|cloud            2. DSO_MODE (or DSO_FORCE_MODE) = local|cloud
//   3. /etc/dso/dso.yaml exists: cloud (a host set up with the agent)
//   4. ./dso.yaml (or $DSO_CONFIG) exists: local, its providers run by the CLI itself
//   5. the local vault exists: local
//   6. nothing is set up: local, with guidance on how to set up either mode.
// In cloud mode, provider references are resolved by the agent over its socket. Step 4 differs
// from the seed, which made ./dso.yaml mean cloud mode: a project-level dso.yaml without an
// agent is a normal developer setup, and it works here without one (docs/agent.md).
import { existsSync } from 'node:fs';
import { DsoError } from '../errors.ts';
import { SYSTEM_CONFIG_PATH } from './find.ts';

export type Mode = 'local' | 'cloud';

export interface ModeDecision {
  mode: Mode;
  /** Why, in words, for `status` and `doctor`. */
  reason: string;
  warnings: string[];
  /** When nothing is set up yet: what to run, for either mode. */
  guidance?: string;
}

export const SETUP_GUIDANCE = 'nothing is set up yet: run `docker dso init` for Local Mode (an encrypted vault on this machine), or `sudo docker dso bootstrap agent` for Cloud Mode (the agent, with Vault, AWS, Azure or Huawei)';

export function detectMode(env: Readonly<Record<string, string | undefined>>, options: { flag?: string; systemConfig?: string; localConfig?: string; vaultPath?: string } = {}): ModeDecision {
  const system = options.systemConfig ?? SYSTEM_CONFIG_PATH;
  const warnings: string[] = [];
  const pick = (value: string, source: string): Mode => {
    if (value !== 'local' && value !== 'cloud') {
      throw new DsoError('USAGE', `${source} must be local or cloud`, { hint: `for example ${source === '--mode' ? '--mode local' : `${source}=local`}` });
    }
    return value;
  };
  if (options.flag !== undefined) return { mode: pick(options.flag, '--mode'), reason: 'chosen with --mode', warnings };
  const forced = env.DSO_MODE || env.DSO_FORCE_MODE;
  if (forced) {
    const source = env.DSO_MODE ? 'DSO_MODE' : 'DSO_FORCE_MODE';
    if (env.DSO_MODE && env.DSO_FORCE_MODE && env.DSO_MODE !== env.DSO_FORCE_MODE) warnings.push(`DSO_MODE=${env.DSO_MODE} and DSO_FORCE_MODE=${env.DSO_FORCE_MODE} disagree; DSO_MODE wins`);
    return { mode: pick(forced, source), reason: `chosen with ${source}`, warnings };
  }
  if (existsSync(system)) {
    if (options.localConfig && existsSync(options.localConfig)) {
      warnings.push(`both ${system} and ${options.localConfig} exist: cloud mode uses the agent, configured by ${system}; ${options.localConfig} is ignored (set DSO_MODE=local to use it)`);
    }
    return { mode: 'cloud', reason: `${system} exists`, warnings };
  }
  const project = env.DSO_CONFIG || options.localConfig;
  if (project && existsSync(project)) return { mode: 'local', reason: `no ${system}; ${project} configures providers run by this CLI`, warnings };
  if (options.vaultPath && existsSync(options.vaultPath)) return { mode: 'local', reason: `no ${system}; the local vault ${options.vaultPath} exists`, warnings };
  return { mode: 'local', reason: `no ${system}, no dso.yaml, no local vault`, warnings, ...(options.vaultPath ? { guidance: SETUP_GUIDANCE } : {}) };
}
