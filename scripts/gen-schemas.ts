// Writes scenarios/schemas/*.schema.json from the zod schemas (run after changing one;
// a unit test fails while the committed files differ from what this writes).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jsonSchemas } from '../lab/schema/json-schema.ts';

const dir = join(import.meta.dirname, '..', 'scenarios', 'schemas');
mkdirSync(dir, { recursive: true });
for (const [name, schema] of Object.entries(jsonSchemas())) {
  writeFileSync(join(dir, name), JSON.stringify(schema, null, 2) + '\n');
  console.log(`wrote scenarios/schemas/${name}`);
}
