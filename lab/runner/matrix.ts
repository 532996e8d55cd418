import { faultLabel, faultStrategies, type DriverName, type FaultSpec, type Scenario, type Strategy } from '../config/scenario.ts';
import { leaves, withValue, type AxisPath, type Settings } from '../config/settings.ts';

/** One cell of a scenario's matrix: a strategy and one value of every axis. */
export interface Cell {
  /** Human label, e.g. `block, link.rate=100Mbit`. */
  label: string;
  /** The same without the strategy: cells that differ only by strategy share it. */
  group: string;
  strategy: Strategy;
  driver: DriverName;
  /** The axis values as written in the scenario (and `driver` when a scenario has several). */
  params: Partial<Record<AxisPath | 'driver' | 'fault' | 'concurrency', unknown>>;
  settings: Settings;
  /** The fault this cell injects into each of its migrations (none: the fault-free cell). */
  fault?: FaultSpec;
}

function baseSettings(s: Scenario): Settings {
  return { link: s.link, workload: s.workload, tunables: s.tunables, mirror: s.mirror, hypervisor: s.hypervisor, security: s.security, verify: s.verify };
}

/** Every combination of drivers and axis values (declaration order, last axis fastest) x every strategy. */
export function expandCells(s: Scenario): Cell[] {
  let combos: { params: Partial<Record<AxisPath, unknown>>; settings: Settings }[] = [{ params: {}, settings: baseSettings(s) }];
  for (const [path, values] of Object.entries(s.axes) as [AxisPath, unknown[]][]) {
    combos = combos.flatMap((c) => values.map((v) => ({ params: { ...c.params, [path]: v }, settings: withValue(c.settings, path, leaves[path].parse(v)) })));
  }
  const manyDrivers = s.drivers.length > 1 || s.drivers[0] !== 'qemu';
  // The fault-free cells first, then each fault's, for the strategies it applies to.
  const faults: (FaultSpec | undefined)[] = [undefined, ...s.faults];
  return faults.flatMap((fault) =>
    s.drivers.flatMap((driver) =>
      combos.flatMap((c) =>
        s.strategies
          .filter((strategy) => !fault || faultStrategies(fault).includes(strategy))
          .map((strategy) => {
            const params: Record<string, unknown> = { ...(manyDrivers ? { driver } : {}), ...c.params, ...(fault ? { fault: faultLabel(fault) } : {}) };
            const group = Object.entries(params)
              .map(([k, v]) => `${k}=${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`)
              .join(', ');
            return { label: group ? `${strategy}, ${group}` : strategy, group, strategy, driver, params: params as Cell['params'], settings: c.settings, ...(fault ? { fault } : {}) };
          }),
      ),
    ),
  );
}

/** Run order: every repetition runs every cell once (block, shared, block, shared, ...). */
export function plan(s: Scenario): { cell: Cell; repetition: number }[] {
  const cells = expandCells(s);
  const out: { cell: Cell; repetition: number }[] = [];
  for (let r = 1; r <= s.repetitions; r++) for (const cell of cells) out.push({ cell, repetition: r });
  return out;
}
