// The names Key Vault accepts, checked before a request is made, so that a reference that cannot
// exist says why instead of coming back as a vague 400 or 404.

/** Key Vault secret names: 1 to 127 letters, digits and dashes. */
const SECRET_NAME = /^[0-9A-Za-z-]{1,127}$/;
/** Version ids are 32 hexadecimal characters. */
const VERSION = /^[0-9A-Fa-f]{32}$/;

export const SECRET_NAME_RULE = 'Key Vault secret names are 1 to 127 letters, digits and "-"';
export const VERSION_RULE = 'Key Vault version ids are 32 hexadecimal characters';

export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

export function isVersionId(version: string): boolean {
  return VERSION.test(version);
}
