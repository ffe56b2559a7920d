// Splits a plugin's stdout into lines without ever holding more than a set number of bytes: a
// line longer than the limit is dropped as it streams by (only its first bytes are kept, to tell
// whose answer it was). Every byte that passed through is zeroed once handled, since a line may
// carry a secret's base64.

/** How many bytes of an oversized line are kept, enough for `{"id":N,"type":"value"`. */
const HEAD_BYTES = 256;
const NEWLINE = 0x0a;

export interface LineEvents {
  /** A complete line, without its newline. Valid only during the call: it is zeroed after. */
  line(bytes: Uint8Array): void;
  /** A line went over the limit; `head` is its start. Valid only during the call: it is zeroed after. */
  oversized(head: Uint8Array): void;
}

export class LineReader {
  /** The longest line accepted; may change between chunks (it follows the largest maxBytes asked). */
  limit: number;
  #buf = new Uint8Array(4096);
  #len = 0;
  /** Set while the rest of an oversized line is being skipped. */
  #skipping = false;
  readonly #events: LineEvents;

  constructor(limit: number, events: LineEvents) {
    this.limit = limit;
    this.#events = events;
  }

  /** Feeds bytes read from the pipe, and zeroes them (they are the caller's, read for us). */
  push(chunk: Uint8Array): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(NEWLINE, start);
      const end = nl === -1 ? chunk.length : nl;
      if (this.#skipping) {
        if (nl !== -1) this.#skipping = false;
      } else if (this.#len + (end - start) > this.limit) {
        this.#oversized(chunk.subarray(start, end));
        this.#skipping = nl === -1;
      } else {
        this.#append(chunk.subarray(start, end));
        if (nl !== -1) this.#emit();
      }
      start = end + 1;
    }
    chunk.fill(0);
  }

  /** Zeroes what is held (the plugin stopped mid-line). */
  wipe(): void {
    this.#buf.fill(0);
    this.#len = 0;
    this.#skipping = false;
  }

  #append(bytes: Uint8Array): void {
    const need = this.#len + bytes.length;
    if (need > this.#buf.length) {
      // Grow by doubling (never past the limit), and zero the old buffer: it held part of a line.
      const grown = new Uint8Array(Math.min(Math.max(need, this.#buf.length * 2), Math.max(need, this.limit)));
      grown.set(this.#buf.subarray(0, this.#len));
      this.#buf.fill(0);
      this.#buf = grown;
    }
    this.#buf.set(bytes, this.#len);
    this.#len = need;
  }

  #emit(): void {
    const line = this.#buf.subarray(0, this.#len);
    try {
      this.#events.line(line);
    } finally {
      line.fill(0);
      this.#len = 0;
    }
  }

  #oversized(more: Uint8Array): void {
    const head = new Uint8Array(HEAD_BYTES);
    const fromBuf = Math.min(this.#len, HEAD_BYTES);
    head.set(this.#buf.subarray(0, fromBuf));
    head.set(more.subarray(0, HEAD_BYTES - fromBuf), fromBuf);
    const kept = fromBuf + Math.min(more.length, HEAD_BYTES - fromBuf);
    this.wipe();
    try {
      this.#events.oversized(head.subarray(0, kept));
    } finally {
      head.fill(0);
    }
  }
}
