import { readFileSync, existsSync } from 'node:fs';

/** A server panic drops its connection, which a browser test may not notice: fail the run on any. */
export default function globalTeardown() {
  const log = `${process.env.E2E_TMP ?? '.tmp'}/server-stderr.log`;
  if (!existsSync(log)) return;
  const text = readFileSync(log, 'utf8');
  if (text.includes('panicked')) {
    throw new Error(`the server panicked during the end-to-end run:\n${text.slice(0, 4000)}`);
  }
}
