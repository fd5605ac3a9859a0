import { parentPort } from 'node:worker_threads';
import { createHash } from 'node:crypto';

/**
 * Hashes what the main thread posts. A transferred ArrayBuffer is sent back with the digest, so the caller gets
 * its buffer again without any copy.
 */
interface Job { id: number; data: Uint8Array | ArrayBuffer; offset: number; length: number }

parentPort!.on('message', (job: Job) => {
  if (job.data instanceof ArrayBuffer) {
    const digest = createHash('sha1').update(new Uint8Array(job.data, job.offset, job.length)).digest();
    parentPort!.postMessage({ id: job.id, digest, data: job.data }, [job.data]);
  } else {
    const digest = createHash('sha1').update(job.data).digest();
    parentPort!.postMessage({ id: job.id, digest });
  }
});
