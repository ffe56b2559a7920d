// Log redaction: a secret value that reaches a log call by accident never reaches the output.
import { expect, test } from 'bun:test';
import { createLogger } from '../../../src/observe/log.ts';
import { Redactor } from '../../../src/observe/redact.ts';
import { SecretBytes } from '../../../src/secrets/secret-bytes.ts';

function capture(level: 'debug' | 'info' = 'debug', format: 'json' | 'text' = 'json') {
  const lines: string[] = [];
  const redactor = new Redactor();
  const log = createLogger({ level, format, redactor, write: (b) => lines.push(new TextDecoder().decode(b)), now: () => new Date('2026-01-15T10:30:00Z') });
  return { lines, redactor, log };
}

test('lines are JSON with level, msg, ts and fields', () => {
  const { lines, log } = capture();
  log.child({ component: 'rotation' }).info('Rotation started', { secret: 'db_password', provider: 'vault' });
  expect(JSON.parse(lines[0]!)).toEqual({ level: 'info', msg: 'Rotation started', ts: '2026-01-15T10:30:00.000Z', component: 'rotation', secret: 'db_password', provider: 'vault' });
});

test('a known secret value is removed wherever it appears: message, field, nested error text', () => {
  const { lines, log, redactor } = capture();
  const value = 'Sup3r-Secret-DB-Passw0rd!';
  const bytes = new TextEncoder().encode(value);
  redactor.remember('vault:db#password', bytes);
  log.error(`connection failed for postgres://app:${value}@db/app`, { detail: { body: `{"password":"x","echo":"${value}"}` }, why: new Error(`bad ${value}`) });
  log.info('text twice', { a: `${value}${value}` });
  const out = lines.join('');
  expect(out).not.toContain(value);
  expect(out).not.toContain('Sup3r-Secret');
  expect(out).toContain('[redacted]');
  redactor.forget('vault:db#password');
});

test('credential-named fields, secret buffers and credential shapes are redacted without being known', () => {
  const { lines, log } = capture();
  log.warn('provider answered', {
    token: 'hvs.abcdefghijklmnopqrstuvwx',
    value: new SecretBytes(new TextEncoder().encode('a-secret-value')),
    raw: new Uint8Array([1, 2, 3]),
    url: 'https://kv.example/secret?sig=abcdef123456&se=2030',
    header: 'Authorization: Bearer abcdefghijklmnopqrstuvwxyz',
    ok: true,
  });
  const line = JSON.parse(lines[0]!);
  expect(line.token).toBe('[redacted]');
  expect(line.value).toBe('[redacted]');
  expect(line.raw).toBe('[redacted]');
  expect(line.url).not.toContain('abcdef123456');
  expect(line.header).not.toContain('abcdefghijklmnopqrstuvwxyz');
  expect(line.ok).toBe(true);
});

test('levels filter, and text format is readable', () => {
  const { lines, log } = capture('info', 'text');
  log.debug('hidden');
  log.info('shown', { container: 'postgres' });
  expect(lines).toEqual(['2026-01-15T10:30:00.000Z INFO  shown container="postgres"\n']);
});
