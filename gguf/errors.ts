// Errors raised by the GGUF reader and codecs. No dependency on the rest of moet.

/** The bytes are not a valid GGUF file. `offset` is the byte offset where the problem was found. */
export class GGUFFormatError extends Error {
  constructor(message: string, readonly offset: number, options?: ErrorOptions) {
    super(`${message} (at byte ${offset})`, options);
    this.name = 'GGUFFormatError';
  }
}

/** A tensor type that moet cannot decode or run. */
export class UnsupportedQuantError extends Error {
  constructor(message: string, readonly ggmlType: number) {
    super(message);
    this.name = 'UnsupportedQuantError';
  }
}
