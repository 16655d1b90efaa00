// Parses an AsyncAPI document (the file named by the first argument) with the official
// parser and prints its diagnostics; exits 1 if it has an error, 0 otherwise.
import { Parser } from '@asyncapi/parser';
import { readFileSync } from 'node:fs';

const severities = ['error', 'warning', 'info', 'hint'];
const { document, diagnostics } = await new Parser().parse(readFileSync(process.argv[2], 'utf8'));
for (const d of diagnostics) {
  console.log(`${severities[d.severity]} ${d.code} ${d.path.join('.')}: ${d.message}`);
}
const errors = diagnostics.filter((d) => d.severity === 0);
process.exit(document && errors.length === 0 ? 0 : 1);
