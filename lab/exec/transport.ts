/**
 * One lab host as the harness sees it: run a command, read and write files, start and
 * signal a long-lived process, stream a program's output, connect to a Unix socket. Two
 * implementations: local (`nsenter` into the node's namespaces, this host's file system)
 * and ssh2 (lab/exec/ssh.ts). Nothing in migralab reaches around this interface to touch
 * a node: no local `rm` of a node's file, no PID read from this host's /proc for a
 * process on a node.
 */
import { Deadline } from '../time/wait.ts';
import type { Duplex, Readable } from 'node:stream';
import type { RunOptions, RunResult } from './run.ts';

/** A long-lived process on a node, started by `spawn`. */
export interface ProcessHandle {
  readonly pid: number;
  /** Kernel start time of the process (tells a reused PID from ours), when the node can say. */
  readonly startTime: string | undefined;
  alive(): Promise<boolean>;
  /** Sends a signal (only to this PID, only while it is still this process). */
  signal(sig: NodeJS.Signals): Promise<void>;
}

/** A program whose output is read as it comes (ping), until it exits or is stopped. */
export interface StreamingProcess {
  readonly pid: number | undefined;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Resolves when the program has exited (never rejects). */
  readonly exited: Promise<{ exitCode: number | undefined; signal: string | undefined; error?: string }>;
  kill(sig?: NodeJS.Signals): void;
}

export interface NodeTransport {
  readonly name: string;
  /** 'local' or 'ssh': recorded, and what some callers must know (e.g. where a file is built). */
  readonly kind: 'local' | 'ssh';
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Starts a detached process whose output goes to logFile (on the node). */
  spawn(argv: readonly string[], opts: { logFile: string }): Promise<ProcessHandle>;
  /** A handle for a process this lab started earlier (from the ledger). */
  process(pid: number, startTime?: string): ProcessHandle;
  stream(argv: readonly string[]): StreamingProcess;
  readFile(path: string): Promise<Buffer>;
  writeFile(path: string, data: string | Buffer, opts?: { mode?: number }): Promise<void>;
  mkdir(path: string, opts?: { mode?: number }): Promise<void>;
  /** Removes a file or a directory tree; nothing there is not an error. */
  remove(path: string): Promise<void>;
  exists(path: string): Promise<boolean>;
  /** A stream to a Unix socket on the node (QMP, the guest's control shell). */
  connect(unixPath: string): Promise<Duplex>;
}

/** Sends sig to the process and waits until it is gone; SIGKILL after graceMs. Returns whether it had to kill. */
export async function stopProcess(p: ProcessHandle, { graceMs = 500, sleep = (ms: number) => new Promise((r) => setTimeout(r, ms)) } = {}): Promise<'gone' | 'terminated' | 'killed'> {
  if (!(await p.alive())) return 'gone';
  await p.signal('SIGTERM');
  const grace = new Deadline(graceMs);
  while (!grace.expired) {
    if (!(await p.alive())) return 'terminated';
    await sleep(10);
  }
  await p.signal('SIGKILL');
  const hard = new Deadline(5000);
  while (!hard.expired) {
    if (!(await p.alive())) return 'killed';
    await sleep(10);
  }
  return 'killed';
}
