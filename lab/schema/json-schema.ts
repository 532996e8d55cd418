import { z } from 'zod';
import { resultsSchema } from '../results/schema.ts';
import { topologySchema } from '../config/topology.ts';
import { scenarioSchema } from '../config/scenario.ts';

/**
 * JSON Schemas generated from the zod schemas the code itself uses: results.json for
 * other tools, topology and scenario files (as written, i.e. input form) for editors.
 */
export function jsonSchemas(): Record<string, unknown> {
  return {
    'results.schema.json': { title: 'migralab results.json', ...z.toJSONSchema(resultsSchema, { io: 'output', unrepresentable: 'any' }) },
    'topology.schema.json': { title: 'migralab topology file', ...z.toJSONSchema(topologySchema, { io: 'input', unrepresentable: 'any' }) },
    'scenario.schema.json': { title: 'migralab scenario file', ...z.toJSONSchema(scenarioSchema, { io: 'input', unrepresentable: 'any' }) },
  };
}
