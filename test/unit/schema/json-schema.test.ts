import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { jsonSchemas } from '../../../lab/schema/json-schema.ts';

describe('published JSON Schemas', () => {
  it.each(Object.entries(jsonSchemas()))('scenarios/schemas/%s is what the code generates (run scripts/gen-schemas.ts)', (name, schema) => {
    expect(JSON.parse(readFileSync(`scenarios/schemas/${name}`, 'utf8'))).toEqual(schema);
  });

  it('results.json carries a schema name and version', () => {
    const s = jsonSchemas()['results.schema.json'] as { properties: Record<string, { const?: unknown }>; required: string[] };
    expect(s.properties.schema!.const).toBe('migralab/results');
    expect(s.properties.version!.const).toBe(1);
    expect(s.required).toEqual(expect.arrayContaining(['schema', 'version', 'environment', 'iterations']));
  });
});
