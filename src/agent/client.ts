// The CLI's side of the agent API: is an agent there, what is its status, and resolve
// references through it (values arrive as frames of raw bytes).
import { DsoError } from '../errors.ts';
import { FrameDecoder } from '../providers/frames.ts';
import { SecretBytes, wipeAll } from '../secrets/secret-bytes.ts';

export interface AgentResolution {
  values: Map<string, { value: SecretBytes; version?: string; stale: boolean }>;
  failures: Array<{ id: string; kind: string; message: string }>;
}

async function call(socket: string, path: string, init: RequestInit = {}): Promise<Response> {
  try {
    return await fetch(`http://dso-agent${path}`, { ...init, unix: socket } as RequestInit);
  } catch (e) {
    throw new DsoError('AGENT_UNREACHABLE', `cannot reach the DSO agent at ${socket}: ${(e as { code?: string }).code ?? (e as Error).message}`, {
      hint: 'start it (`sudo docker dso system enable`, or `dso agent`), and check that you may open its socket (group in agent.socket.group)',
    });
  }
}

export async function agentStatus(socket: string): Promise<Record<string, unknown>> {
  const r = await call(socket, '/v1/status');
  if (!r.ok) throw new DsoError('INTERNAL', `the agent answered ${r.status} to a status request`);
  return (await r.json()) as Record<string, unknown>;
}

/** Asks the agent to start (log in to) every provider and say which work. */
export async function agentCheckProviders(socket: string): Promise<Array<{ name: string; kind: string; isolation: string; ok: boolean; ms: number; error?: { kind: string; message: string } }>> {
  const r = await call(socket, '/v1/providers/check', { method: 'POST' });
  if (!r.ok) throw new DsoError('INTERNAL', `the agent answered ${r.status} to a provider check`);
  return ((await r.json()) as { providers: [] }).providers;
}

/** Resolves canonical ids through the agent. The caller owns (and wipes) the values. */
export async function agentResolve(socket: string, ids: string[]): Promise<AgentResolution> {
  const r = await call(socket, '/v1/resolve', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secrets: ids }) });
  if (!r.ok) {
    const body = (await r.json().catch(() => ({}))) as { error?: { code?: string; message?: string; hint?: string } };
    throw new DsoError('PROVIDER_FAILED', `the agent refused the request (${r.status}): ${body.error?.message ?? 'no details'}`, body.error?.hint ? { hint: body.error.hint } : {});
  }
  const bytes = new Uint8Array(await r.arrayBuffer());
  const decoder = new FrameDecoder();
  const out: AgentResolution = { values: new Map(), failures: [] };
  try {
    let ended = false;
    for (const m of decoder.push(bytes)) {
      if (m.type === 'value' && typeof m.id === 'string' && m.value instanceof Uint8Array) {
        out.values.set(m.id, { value: new SecretBytes(m.value), ...(typeof m.version === 'string' ? { version: m.version } : {}), stale: m.stale === true });
      } else if (m.type === 'failure' && typeof m.id === 'string') {
        out.failures.push({ id: m.id, kind: String(m.kind), message: String(m.message) });
      } else if (m.type === 'end') {
        ended = true;
      }
    }
    if (!ended) throw new DsoError('INTERNAL', 'the agent\'s answer was cut short');
    return out;
  } catch (e) {
    wipeAll(...[...out.values.values()].map((v) => v.value));
    throw e;
  } finally {
    bytes.fill(0);
    decoder.wipe();
  }
}
