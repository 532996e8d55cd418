/**
 * Time as an object (testcontainers' `common/clock.ts`): deadline loops, polling and gap
 * arithmetic take a Clock, so their logic is unit-testable without sleeping.
 */
export interface Clock {
  /** Monotonic milliseconds (fractional), for durations and deadlines. */
  now(): number;
  /** Wall-clock epoch milliseconds (QMP event timestamps and ping -D use this clock). */
  epochMs(): number;
  /** Resolves after ms, or rejects with the signal's reason once it is aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  epochMs: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        clearTimeout(t);
        reject(signal!.reason);
      };
      const t = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

/** A clock that only moves when told to: sleep() returns after advancing it. */
export class ManualClock implements Clock {
  private t = 0;
  constructor(private epochBase = 1_700_000_000_000) {}
  now(): number {
    return this.t;
  }
  epochMs(): number {
    return this.epochBase + this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw signal.reason;
    this.t += ms;
  }
}
