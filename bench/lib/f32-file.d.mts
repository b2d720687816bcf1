// Types of f32-file.mjs (plain JavaScript so that bench/*.mjs can load it too).

/** The file's float32 values, in an array that owns its memory. */
export function readF32(file: string): Float32Array;
