import { expect } from 'vitest';
import type { z } from 'zod';
import { parseConfig } from '../../../lab/config/load.ts';
import { ConfigError } from '../../../lab/errors.ts';

/** The issues a config text is refused with (fails the test when it is accepted). */
export function issuesOf(text: string, schema: z.ZodType) {
  try {
    parseConfig('t.yaml', text, schema);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).issues;
  }
  throw new Error('expected a ConfigError');
}
