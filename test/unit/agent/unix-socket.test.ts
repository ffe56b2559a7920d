// The agent's unix sockets: a request that waits on a provider longer than Bun's default idle
// timeout (10 s) still gets its answer (a /v1/resolve behind a 15 s provider timeout was cut).
import { afterEach, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { prepareSocket, serveUnix } from '../../../src/agent/unix-socket.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

test('an answer that takes longer than 10 s still reaches the client, and the socket has its mode', async () => {
  const dir = mkdtempSync('/dev/shm/dso-unix-socket-');
  dirs.push(dir);
  const path = join(dir, 'api.sock');
  await prepareSocket(path, 'agent.socket');
  const server = serveUnix(path, { key: 'agent.socket', mode: 0o660 }, {
    fetch: async () => {
      await Bun.sleep(14_000);
      return new Response('answered');
    },
  });
  try {
    expect(statSync(path).mode & 0o777).toBe(0o660);
    const r = await fetch('http://dso-agent/v1/resolve', { unix: path } as RequestInit);
    expect(await r.text()).toBe('answered');
  } finally {
    server.stop(true);
  }
}, 40_000);
