// `config show` masks every value that could be a credential, and nothing else.
import { expect, test } from 'bun:test';
import { mask } from '../../../src/cli/commands/config.ts';

test('credential values are masked; names of variables and files are not', () => {
  const shown = mask({
    addr: 'https://vault:8200',
    auth: { method: 'token', token: 's.inline-token-value', token_env: 'VAULT_TOKEN', secret_id_file: '/etc/dso/sid' },
    client_secret: 'azure-secret',
    access_key: 'AK', secret_key: 'SK', sk: 'x', password: 'p', passphrase_env: 'P',
    tls: { ca_cert: '/etc/dso/ca.pem', private_key: 'pem' },
    list: [{ token: 't' }],
  }) as Record<string, any>;
  expect(shown.addr).toBe('https://vault:8200');
  expect(shown.auth).toEqual({ method: 'token', token: '********', token_env: 'VAULT_TOKEN', secret_id_file: '/etc/dso/sid' });
  expect(shown.client_secret).toBe('********');
  expect(shown.access_key).toBe('********');
  expect(shown.secret_key).toBe('********');
  expect(shown.sk).toBe('********');
  expect(shown.password).toBe('********');
  expect(shown.passphrase_env).toBe('P');
  expect(shown.tls).toEqual({ ca_cert: '/etc/dso/ca.pem', private_key: '********' });
  expect(shown.list).toEqual([{ token: '********' }]);
});
