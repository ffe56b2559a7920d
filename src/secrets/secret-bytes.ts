// Secret values as bytes we own: they can be wiped after use and never print themselves by accident.

const REDACTED = '[secret redacted]';

export class SecretBytes {
  #bytes: Uint8Array;
  #wiped = false;

  /** Takes ownership of `bytes`: the caller must not keep using the array. */
  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  static copyOf(bytes: Uint8Array): SecretBytes {
    // new Uint8Array(x) copies; a Buffer's slice() would not.
    return new SecretBytes(new Uint8Array(bytes));
  }

  get length(): number {
    return this.#bytes.length;
  }

  get wiped(): boolean {
    return this.#wiped;
  }

  /** The raw bytes, for writing them where they belong. Do not keep the reference. */
  expose(): Uint8Array {
    if (this.#wiped) throw new Error('secret bytes used after wipe');
    return this.#bytes;
  }

  wipe(): void {
    this.#bytes.fill(0);
    this.#wiped = true;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return REDACTED;
  }
}

/** Wipes every buffer given, ignoring undefined: for `finally` blocks. */
export function wipeAll(...buffers: Array<Uint8Array | SecretBytes | undefined>): void {
  for (const b of buffers) {
    if (b instanceof SecretBytes) b.wipe();
    else b?.fill(0);
  }
}
