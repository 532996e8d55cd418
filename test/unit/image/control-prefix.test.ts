import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { COMMAND_PREFIX } from '../../../lab/image/init.ts';

// scripts/bare-migration.mjs drives the same guest image by hand, without the lab's code: when
// the control loop's prefix changed and the script kept sending bare lines, its guest never
// answered and `npm run bench:bare` failed after 5 minutes.
describe("the bare script speaks the guest's control protocol", () => {
  it('sends its one command with the prefix the guest init runs', () => {
    const script = readFileSync('scripts/bare-migration.mjs', 'utf8');
    expect(script).toContain(`const COMMAND_PREFIX = '${COMMAND_PREFIX}';`);
    expect(script).toMatch(/c\.write\(`\$\{COMMAND_PREFIX\}ip addr add/);
  });
});
