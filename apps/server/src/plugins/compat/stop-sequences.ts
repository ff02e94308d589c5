/**
 * Stop sequences, applied to the model's text as it streams: the provider interface has no
 * stop sequences, so the gateway's output is cut here. Text that might be the start of a
 * stop sequence is held back until the next chunk settles it, so a sequence split across
 * chunks is still found and never half-sent.
 */
export class StopScanner {
  private pending = '';
  constructor(private readonly stops: readonly string[]) {}

  /** The text safe to send now, and the stop sequence found (the text then ends before it). */
  push(text: string): { emit: string; hit: string | null } {
    if (this.stops.length === 0) return { emit: text, hit: null };
    const buf = this.pending + text;
    let at = -1;
    let hit: string | null = null;
    for (const stop of this.stops) {
      const i = buf.indexOf(stop);
      if (i >= 0 && (at < 0 || i < at)) {
        at = i;
        hit = stop;
      }
    }
    if (hit !== null) {
      this.pending = '';
      return { emit: buf.slice(0, at), hit };
    }
    const hold = this.heldBack(buf);
    this.pending = buf.slice(buf.length - hold);
    return { emit: buf.slice(0, buf.length - hold), hit: null };
  }

  /** What is held back, when no more text follows (a tool call or the end). */
  flush(): string {
    const rest = this.pending;
    this.pending = '';
    return rest;
  }

  /** Length of the longest end of `buf` that begins some stop sequence. */
  private heldBack(buf: string): number {
    let hold = 0;
    for (const stop of this.stops) {
      for (let k = Math.min(stop.length - 1, buf.length); k > hold; k--) {
        if (buf.endsWith(stop.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    return hold;
  }
}
