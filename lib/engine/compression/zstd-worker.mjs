// Compresses packets with zstd for a source migration, off its main thread: one worker per
// core at most, each with its own instance of the wasm module and its own heap buffers.
//
// in:  { id, input: ArrayBuffer (transferred), length, level }
// out: { id, output: ArrayBuffer, input } (both transferred: the input buffer goes back to be
//      reused), or { id, error, input }. First message: { ready: true } or { failed }.
import { createRequire } from 'node:module';
import path from 'node:path';
import { parentPort } from 'node:worker_threads';

const require = createRequire(import.meta.url);
let Module;
try {
  const lib = require('@bokuweb/zstd-wasm');
  await lib.init();
  Module = require(path.join(path.dirname(require.resolve('@bokuweb/zstd-wasm')), 'module.js')).Module;
} catch (err) {
  parentPort.postMessage({ failed: String(err?.message ?? err) });
  process.exit(1);
}

let src = 0;
let srcSize = 0;
let dst = 0;
let dstSize = 0;

function room(n) {
  if (n > srcSize) {
    if (src) Module._free(src);
    src = Module._malloc(n);
    srcSize = n;
  }
  const bound = Module._ZSTD_compressBound(n);
  if (bound > dstSize) {
    if (dst) Module._free(dst);
    dst = Module._malloc(bound);
    dstSize = bound;
  }
  if (!src || !dst) throw new Error('zstd: cannot allocate its buffers in the wasm heap');
}

parentPort.on('message', ({ id, input, length, level }) => {
  try {
    room(length);
    Module.HEAPU8.set(new Uint8Array(input, 0, length), src);
    const n = Module._ZSTD_compress(dst, dstSize, src, length, level);
    if (Module._ZSTD_isError(n)) throw new Error(`zstd: compression failed (code ${n})`);
    const output = Module.HEAPU8.slice(dst, dst + n).buffer;
    parentPort.postMessage({ id, output, input }, [output, input]);
  } catch (err) {
    parentPort.postMessage({ id, error: String(err?.message ?? err), input }, [input]);
  }
});
parentPort.postMessage({ ready: true });
