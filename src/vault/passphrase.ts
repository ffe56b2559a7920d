// The one rule for a passphrase stored in a file: its first line, without the line ending, so that
// files written by `echo` work. Used by `--passphrase-file` and by the local provider.

/** The passphrase in `raw` (a file's bytes), as a new buffer; wipes `raw`. */
export function passphraseFromFileContent(raw: Uint8Array): Uint8Array {
  let end = raw.indexOf(0x0a);
  if (end === -1) end = raw.length;
  if (end > 0 && raw[end - 1] === 0x0d) end--;
  // A copy: on a Node Buffer (what readFileSync returns) slice() is a view, and wiping `raw`
  // would wipe the passphrase too.
  const pass = new Uint8Array(raw.subarray(0, end));
  raw.fill(0);
  return pass;
}
