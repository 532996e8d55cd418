import type { Scenario, Strategy } from '../config/scenario.ts';
import { leaves, withValue, type AxisPath, type Settings } from '../config/settings.ts';

/** One cell of a scenario's matrix: a strategy and one value of every axis. */
export interface Cell {
  /** Human label, e.g. `block, link.rate=100Mbit`. */
  label: string;
  /** The same without the strategy: cells that differ only by strategy share it. */
  group: string;
  strategy: Strategy;
  /** The axis values as written in the scenario. */
  params: Partial<Record<AxisPath, unknown>>;
  settings: Settings;
}

function baseSettings(s: Scenario): Settings {
  return { link: s.link, workload: s.workload, tunables: s.tunables, mirror: s.mirror };
}

/** Every combination of axis values (declaration order, last axis fastest) x every strategy. */
export function expandCells(s: Scenario): Cell[] {
  let combos: { params: Partial<Record<AxisPath, unknown>>; settings: Settings }[] = [{ params: {}, settings: baseSettings(s) }];
  for (const [path, values] of Object.entries(s.axes) as [AxisPath, unknown[]][]) {
    combos = combos.flatMap((c) => values.map((v) => ({ params: { ...c.params, [path]: v }, settings: withValue(c.settings, path, leaves[path].parse(v)) })));
  }
  return combos.flatMap((c) =>
    s.strategies.map((strategy) => {
      const group = Object.entries(c.params)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(', ');
      return { label: group ? `${strategy}, ${group}` : strategy, group, strategy, params: c.params, settings: c.settings };
    }),
  );
}

/** Run order: every repetition runs every cell once (block, shared, block, shared, ...). */
export function plan(s: Scenario): { cell: Cell; repetition: number }[] {
  const cells = expandCells(s);
  const out: { cell: Cell; repetition: number }[] = [];
  for (let r = 1; r <= s.repetitions; r++) for (const cell of cells) out.push({ cell, repetition: r });
  return out;
}
