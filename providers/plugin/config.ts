// Custom providers (`type: plugin`): which executable in the plugin directory serves the secrets,
// the SHA-256 it must have, and the settings DSO hands it when it starts. Credentials never go in
// `settings`: the plugin reads them from the variables listed under the entry's `env:`.
import * as v from 'valibot';
import type { ProviderDefinition } from '../../src/providers/contract.ts';

export const DEFAULT_PLUGIN_DIR = '/usr/local/lib/dso/plugins';
/** The executable is `<plugin_dir>/dso-provider-<plugin>`. */
export const PLUGIN_PREFIX = 'dso-provider-';
/** A plain file name: no '/', no '.', so it can never name a file outside plugin_dir. */
export const PLUGIN_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const SHA256 = /^[0-9a-fA-F]{64}$/;
/** Settings cross to the plugin as one JSON line; a small bound keeps that line small. */
const MAX_SETTINGS_JSON = 64 * 1024;

/** Whether `x` is what JSON can carry: strings, finite numbers, booleans, null, lists, mappings. */
function isJsonValue(x: unknown, depth = 0): boolean {
  if (depth > 32) return false;
  if (x === null || typeof x === 'string' || typeof x === 'boolean') return true;
  if (typeof x === 'number') return Number.isFinite(x);
  if (Array.isArray(x)) return x.every((e) => isJsonValue(e, depth + 1));
  if (typeof x === 'object' && Object.getPrototypeOf(x) === Object.prototype) {
    return Object.values(x as Record<string, unknown>).every((e) => isJsonValue(e, depth + 1));
  }
  return false;
}

const isMapping = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

export const pluginSchema = v.strictObject(
  {
    plugin: v.pipe(
      v.string('plugin must name the plugin, like internal for dso-provider-internal'),
      v.regex(PLUGIN_NAME, 'plugin must be lowercase letters, digits, "_" and "-" (no "/" or "."), like internal for dso-provider-internal'),
    ),
    sha256: v.pipe(
      v.string('sha256 must be the plugin\'s SHA-256 as 64 hex digits (run sha256sum on it)'),
      v.regex(SHA256, 'sha256 must be the plugin\'s SHA-256 as 64 hex digits (run sha256sum on it)'),
      v.toLowerCase(),
    ),
    plugin_dir: v.optional(
      v.pipe(
        v.string('plugin_dir must be an absolute directory path'),
        v.check((s) => s.startsWith('/') && !s.includes('\0'), 'plugin_dir must be an absolute directory path, like /usr/local/lib/dso/plugins'),
      ),
      DEFAULT_PLUGIN_DIR,
    ),
    settings: v.optional(
      v.pipe(
        v.custom<Record<string, unknown>>((x) => isMapping(x) && isJsonValue(x), 'settings must be a mapping of plain values (strings, numbers, booleans, null, lists, mappings)'),
        v.check((x) => JSON.stringify(x).length <= MAX_SETTINGS_JSON, `settings must be smaller than ${MAX_SETTINGS_JSON / 1024} KiB as JSON`),
      ),
      () => ({}),
    ),
  },
  'a plugin provider takes the keys plugin, sha256, plugin_dir and settings (and the common type, isolation, timeout, env)',
);

export type PluginConfig = v.InferOutput<typeof pluginSchema>;

export const definition: ProviderDefinition<PluginConfig> = {
  kind: 'plugin',
  schema: pluginSchema,
  // The plugin's variables are exactly those the entry lists under the common `env:` key.
  environment: () => [],
  // A plugin is code DSO did not write: by default it runs under a process that holds only its
  // own variables, so neither it nor a bug in it can read DSO's environment or another provider's.
  defaultIsolation: 'process',
};
