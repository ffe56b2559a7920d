// Kubernetes auth: the pod's service account token, exchanged for a Vault token at
// auth/<mount>/login. The file is read at each login: projected tokens are rotated by the kubelet.
import { callOptions, type VaultApi } from './api.ts';
import { readCredential } from './credentials.ts';
import { loginWith, type AuthMethod } from './login.ts';
import type { VaultAuthConfig } from './config.ts';

type KubernetesConfig = Extract<VaultAuthConfig, { method: 'kubernetes' }>;

export function kubernetesAuth(config: KubernetesConfig, api: VaultApi, env: Readonly<Record<string, string>>): AuthMethod {
  return {
    describe: `the Kubernetes login at auth/${config.mount} (role ${config.role})`,
    canReplace: true,
    loginBeforeExpiry: true,
    obtain(signal) {
      const jwt = readCredential({ file: config.jwt_file, key: 'jwt_file' }, env, 'the Kubernetes service account token');
      return loginWith(`logging in to Vault with Kubernetes auth at auth/${config.mount} as role ${config.role}`, [jwt], () =>
        api.kubernetesLogin({ mount_point: config.mount, role: config.role, jwt, requestOptions: callOptions(undefined, signal) }),
      );
    },
  };
}
