// A loading progress bar for the CLI, drawn on stderr only when it is a terminal (nothing on pipes).

/** A stream that may be a terminal. */
interface MaybeTTY {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** Draws `label [#####.....]  45%` in place; `done()` erases it. */
export interface ProgressBar {
  update(fraction: number): void;
  done(): void;
}

const NOOP: ProgressBar = { update() {}, done() {} };

/**
 * A progress bar on `stream` when it is a TTY, else a no-op.
 * @throws nothing
 */
export function progressBar(stream: MaybeTTY, label: string): ProgressBar {
  if (!stream.isTTY) return NOOP;
  let shown = -1;
  let active = false;
  return {
    update(fraction: number) {
      const pct = Math.max(0, Math.min(100, Math.floor(fraction * 100)));
      if (pct === shown) return;
      shown = pct;
      active = true;
      const width = Math.max(10, Math.min(40, (stream.columns ?? 80) - label.length - 10));
      const filled = Math.round((pct / 100) * width);
      stream.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(pct).padStart(3)}%`);
    },
    done() {
      if (active) stream.write('\r\x1b[K');
      active = false;
    },
  };
}

/** Yields to the event loop so that signals (Ctrl-C) and output get a turn between tokens. @throws nothing */
export function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
