import { vi } from 'vitest';
import { main } from '../../../lab/cli/main.ts';

/** migralab's main() in this process, its stdout silenced and its stderr captured. */
export async function runMain(argv: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((stderr += String(s)), true));
  try {
    return { code: await main(argv), stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}
