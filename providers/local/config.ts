// The local encrypted vault as a provider (`local:app/db_password`), for dso.yaml setups that mix
// it with cloud providers or run it under the agent: where the vault file is and where its
// passphrase comes from.
import * as v from 'valibot';
import type { ProviderDefinition } from '../../src/providers/contract.ts';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const localSchema = v.pipe(
  v.strictObject({
    path: v.optional(v.pipe(v.string('path must be the vault file\'s path'), v.minLength(1, 'path must not be empty'))),
    passphrase_env: v.optional(v.pipe(v.string('passphrase_env must name an environment variable'), v.regex(ENV_NAME, 'passphrase_env must be a variable name like DSO_PASSPHRASE'))),
    passphrase_file: v.optional(v.pipe(v.string('passphrase_file must be a file path'), v.minLength(1, 'passphrase_file must not be empty'))),
  }, 'the local provider takes the keys path, passphrase_env and passphrase_file'),
  v.check((c) => (c.passphrase_env === undefined) !== (c.passphrase_file === undefined), 'give exactly one of passphrase_env and passphrase_file'),
);

export type LocalConfig = v.InferOutput<typeof localSchema>;

export const definition: ProviderDefinition<LocalConfig> = {
  kind: 'local',
  schema: localSchema,
  environment: (c) => (c.passphrase_env === undefined ? [] : [c.passphrase_env]),
  // Without `path`, the vault is found the way the CLI finds it: $DSO_HOME, else ~/.dso.
  optionalEnvironment: (c) => (c.path === undefined ? ['DSO_HOME', 'HOME'] : []),
  defaultIsolation: 'worker',
  // The vault and its passphrase file are DSO's own, kept readable by DSO's user only, and every
  // `secret set` replaces the vault file as that user: another user could not follow it.
  runsAsDso: true,
};
