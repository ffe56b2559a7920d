// Paths DSO puts inside application containers, in one place: the read-only directory holding the
// entrypoint wrapper, and the marker each secret volume gets once it holds every file.

/** Where the bin volume is mounted (read-only); it holds dso-holder. */
export const BIN_DIR = '/run/dso-bin';
/** The wrapper: `dso-holder await MARKER... -- ENTRYPOINT CMD...`. */
export const AWAIT_PROGRAM = `${BIN_DIR}/dso-holder`;
/** Written last into each secret volume: the volume is complete. */
export const READY_MARKER = '.dso-ready';
