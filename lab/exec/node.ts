import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { run, type RunOptions, type RunResult } from './run.ts';

/**
 * One lab host as seen by the harness: run a command on it, start a long-lived
 * process on it. The local provider enters the node's network namespace and, for
 * compute nodes, its private mount namespace (own /run, /etc/hosts, /sys).
 */
export interface NodeTransport {
  readonly name: string;
  /** argv prefix that runs a program on this node. */
  readonly prefix: readonly string[];
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Starts a detached process (output to logFile) and returns its PID. */
  spawnDetached(argv: readonly string[], logFile: string): number;
}

export class LocalNode implements NodeTransport {
  readonly prefix: readonly string[];

  constructor(
    readonly name: string,
    readonly netnsName: string,
    ns: { mount?: string; uts?: string } = {},
  ) {
    this.prefix = [
      'nsenter',
      `--net=/run/netns/${netnsName}`,
      ...(ns.mount ? [`--mount=${ns.mount}`] : []),
      ...(ns.uts ? [`--uts=${ns.uts}`] : []),
      '--',
    ];
  }

  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return run([...this.prefix, ...argv], opts);
  }

  spawnDetached(argv: readonly string[], logFile: string): number {
    const fd = openSync(logFile, 'a');
    try {
      const full = [...this.prefix, ...argv];
      const child = spawn(full[0]!, full.slice(1), { detached: true, stdio: ['ignore', fd, fd] });
      if (child.pid === undefined) throw new Error(`could not start ${argv[0]} on ${this.name}`);
      child.unref();
      return child.pid;
    } finally {
      closeSync(fd);
    }
  }
}
