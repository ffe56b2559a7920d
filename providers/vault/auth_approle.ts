// AppRole auth: a role id (not secret on its own) and a secret id, exchanged for a token at
// auth/<mount>/login. Both are read again at each login, so a rotated secret id is used.
import { callOptions, type VaultApi } from './api.ts';
import { readCredential } from './credentials.ts';
import { loginWith, type AuthMethod } from './login.ts';
import type { VaultAuthConfig } from './config.ts';

type AppRoleConfig = Extract<VaultAuthConfig, { method: 'approle' }>;

export function approleAuth(config: AppRoleConfig, api: VaultApi, env: Readonly<Record<string, string>>): AuthMethod {
  return {
    describe: `the AppRole login at auth/${config.mount}`,
    canReplace: true,
    loginBeforeExpiry: true,
    obtain(signal) {
      const roleId =
        config.role_id ??
        readCredential(config.role_id_env !== undefined ? { env: config.role_id_env, key: 'role_id_env' } : { file: config.role_id_file!, key: 'role_id_file' }, env, 'the AppRole role id');
      // Without a secret id source, the role must have bind_secret_id=false.
      const secretId =
        config.secret_id_env !== undefined
          ? readCredential({ env: config.secret_id_env, key: 'secret_id_env' }, env, 'the AppRole secret id')
          : config.secret_id_file !== undefined
            ? readCredential({ file: config.secret_id_file, key: 'secret_id_file' }, env, 'the AppRole secret id')
            : undefined;
      return loginWith(`logging in to Vault with AppRole at auth/${config.mount}`, [roleId, secretId], () =>
        api.approleLogin({ mount_point: config.mount, role_id: roleId, ...(secretId === undefined ? {} : { secret_id: secretId }), requestOptions: callOptions(undefined, signal) }),
      );
    },
  };
}
