// Shapes V8 sees on the per-block path (bench/PROFILE.md, sixth session): arrays that receive objects are created
// holding objects already, so a connection's first request is not a deoptimization of the request path. Checked
// with V8's own introspection in a child process (it needs --allow-natives-syntax).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';

const connectionModule = new URL('../../src/connection/connection.js', import.meta.url).href;

function v8Answer(expression: string): Promise<string> {
  const script = `const m = await import(${JSON.stringify(connectionModule)}); console.log(JSON.stringify(${expression}));`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(stdout.trim());
    });
  });
}

test("a connection's upload queue and sent list hold objects from the start", async () => {
  const answer = await v8Answer('(() => { const s = new m.UploadSlot(); return [%HasObjectElements(s.queue), %HasObjectElements(s.sent), %HasSmiElements([])]; })()');
  // The last value shows the check can tell: a plain [] starts with small-integer elements.
  assert.equal(answer, '[true,true,true]');
});
