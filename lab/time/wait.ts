import { MigralabError } from '../errors.ts';
import { systemClock, type Clock } from './clock.ts';

/**
 * The one deadline loop (testcontainers' wait strategies): every wait in migralab has a
 * deadline, honours Ctrl-C (the run's AbortSignal) and says what it waited for.
 */
export interface WaitOptions {
  timeoutMs: number;
  intervalMs?: number;
  clock?: Clock;
  signal?: AbortSignal;
}

/** A point in time to give up at. */
export class Deadline {
  private readonly end: number;
  constructor(
    readonly ms: number,
    private readonly clock: Clock = systemClock,
  ) {
    this.end = clock.now() + ms;
  }
  remaining(): number {
    return Math.max(0, this.end - this.clock.now());
  }
  get expired(): boolean {
    return this.clock.now() > this.end;
  }
}

/** Throws the INTERRUPTED error when the signal was aborted. */
export function checkAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new MigralabError('INTERRUPTED', `interrupted during ${what}`);
}

/**
 * Polls probe() until it returns a truthy value and returns that value; throws a LAB
 * error naming `what` (with the last probe error) once the deadline passed, or
 * INTERRUPTED when the signal is aborted.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false | null>, opts: WaitOptions): Promise<T> {
  const clock = opts.clock ?? systemClock;
  const deadline = new Deadline(opts.timeoutMs, clock);
  const interval = opts.intervalMs ?? 50;
  let lastErr: unknown;
  for (;;) {
    checkAborted(opts.signal, `waiting for ${what}`);
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      if (e instanceof MigralabError && e.code === 'INTERRUPTED') throw e;
      lastErr = e;
    }
    if (deadline.expired) {
      const detail = lastErr instanceof Error ? `: ${lastErr.message}` : '';
      throw new MigralabError('LAB', `timed out after ${opts.timeoutMs} ms waiting for ${what}${detail}`);
    }
    try {
      await clock.sleep(Math.min(interval, Math.max(1, deadline.remaining())), opts.signal);
    } catch {
      checkAborted(opts.signal, `waiting for ${what}`);
    }
  }
}

/** Races a promise against the signal: rejects with INTERRUPTED as soon as it is aborted. */
export function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined, what: string): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(new MigralabError('INTERRUPTED', `interrupted during ${what}`));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new MigralabError('INTERRUPTED', `interrupted during ${what}`));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
