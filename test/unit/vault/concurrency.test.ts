import { afterAll, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalVault } from '../../../src/vault/vault.ts';
import { bytes, childEnv, containsBytes, FAST_KDF, FIXTURES, scratchDir } from './fixtures/helpers.ts';

const scratch = scratchDir('concurrency');
afterAll(() => scratch.cleanup());

const PASS = bytes('shared passphrase for twenty writers');
const WRITERS = 20;

test(`${WRITERS} processes setting different names at once keep all ${WRITERS}`, async () => {
  const path = join(scratch.dir, 'vault.enc');
  (await LocalVault.create(path, PASS, { kdf: FAST_KDF })).close();

  const valueOf = (i: number) => `value-of-writer-${i}-${'x'.repeat(i * 37)}`;
  const children = Array.from({ length: WRITERS }, (_, i) => {
    const child = Bun.spawn([process.execPath, join(FIXTURES, 'set-secret.ts'), path, `writer/${i}`], {
      env: childEnv(),
      // Secrets go through stdin, never argv.
      stdin: new Blob([
        JSON.stringify({ passphrase: Buffer.from(PASS).toString('hex'), value: Buffer.from(valueOf(i)).toString('hex') }),
      ]),
      stdout: 'pipe',
      stderr: 'pipe',
    });
    return Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  });
  for (const [out, err, code] of await Promise.all(children)) {
    expect({ out: out.trim(), err, code }).toEqual({ out: '{"ok":true}', err: '', code: 0 });
  }

  const vault = await LocalVault.open(path, PASS);
  try {
    expect(vault.list().map((e) => e.name)).toEqual(
      Array.from({ length: WRITERS }, (_, i) => `writer/${i}`).sort(),
    );
    for (let i = 0; i < WRITERS; i++) {
      const secret = vault.get(`writer/${i}`);
      expect(new TextDecoder().decode(secret.expose())).toBe(valueOf(i));
      secret.wipe();
    }
  } finally {
    vault.close();
  }
  const raw = new Uint8Array(readFileSync(path));
  expect(containsBytes(raw, bytes('value-of-writer'))).toBe(false);
  expect(containsBytes(raw, bytes('writer/'))).toBe(false);
});
