// What backends and SDKs say is stripped of credentials before DSO shows or logs it.
import { expect, test } from 'bun:test';
import { sanitize } from '../../../src/providers/sanitize.ts';

test.each([
  ['GET https://bucket.s3.amazonaws.com/x?X-Amz-Signature=abcdef0123&X-Amz-Credential=AKIA failed', ['X-Amz-Signature=abcdef0123', 'X-Amz-Credential']],
  ['request failed: Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N', ['eyJhbGciOiJIUzI1NiJ9', 'dozjgNryP4J3jVmNHl0w5N']],
  ['{"client_secret":"very-secret-client-value","grant_type":"client_credentials"}', ['very-secret-client-value']],
  ['token=hvs.CAESIJ1234567890abcdefghijklmnop expired', ['hvs.CAESIJ1234567890abcdefghijklmnop']],
  ['x-vault-token: s.abcdefghijklmnopqrstuvwx', ['s.abcdefghijklmnopqrstuvwx']],
  ['The security token included in the request is invalid. key AKIAIOSFODNN7EXAMPLE', ['AKIAIOSFODNN7EXAMPLE']],
  ['password=hunter2hunter2; user=app', ['hunter2hunter2']],
])('%s', (text, gone) => {
  const out = sanitize(text);
  for (const g of gone) expect(out).not.toContain(g);
  expect(out).toContain('redacted');
});

test('known credential values are removed wherever they appear, longest first', () => {
  const out = sanitize('backend echoed my-long-credential and my-long-credential-2 back', ['my-long-credential', 'my-long-credential-2']);
  expect(out).toBe('backend echoed [redacted] and [redacted] back');
});

test('ordinary messages stay readable, long ones are cut', () => {
  expect(sanitize('permission denied (HTTP 403) for secret/data/app/db')).toBe('permission denied (HTTP 403) for secret/data/app/db');
  expect(sanitize('x'.repeat(2000)).length).toBeLessThanOrEqual(503);
});
