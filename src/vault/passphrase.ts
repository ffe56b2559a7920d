// The one rule for a passphrase stored in a file: its first line, without the line ending, so that
// files written by `echo` work. Used by `--passphrase-file` and by the local provider.

/** The passphrase in `raw` (a file's bytes), as a new buffer; wipes `raw`. */
export function passphraseFromFileContent(raw: Uint8Array): Uint8Array {
  let end = raw.indexOf(0x0a);
  if (end === -1) end = raw.length;
  if (end > 0 && raw[end - 1] === 0x0d) end--;
  const pass = raw.slice(0, end);
  raw.fill(0);
  return pass;
}
