// The JSON chores of scripts/gpu/run.sh, which a loan must not lose figures to:
//   node scripts/gpu/loan-json.cjs merge OURS FROM LABEL
//       adds FROM's figures that OURS lacks to OURS (created when absent) and lists their keys under
//       OURS["merged.LABEL"]: a retry's rows fill only the gaps its first run left, and say so; FROM is
//       deleted after (one file fewer of the 8 a loan brings back)
//   node scripts/gpu/loan-json.cjs anchor ANCHOR REF_LOG WHY
//       makes ANCHOR (reference_stack.py's anchor.json) readable by gpu-bench --table: NaN and Infinity
//       (Python's json.dump writes them, JSON.parse refuses them) become null; and when the script ended
//       before writing it (it writes it once, at its very end: a time limit or any exception loses every
//       reference figure) or was cut while writing it, rebuilds it from the JSON blocks the script
//       printed to REF_LOG as it went (the kernels' figures, then each model's), later blocks over
//       earlier ones, with ANCHOR["rebuilt_from_log"] = WHY. Exit 1 when there is neither.
// Files are written through a temporary file and a rename (a reader never sees half a file); the
// temporary file is beside its target, so a kill between the two leaves a *.tmp-<pid> that run.sh deletes.
'use strict';
const fs = require('node:fs');

function writeAtomic(path, value) {
  const tmp = `${path}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 1) + '\n');
  fs.renameSync(tmp, path);
}

function readObject(path) {
  const v = JSON.parse(fs.readFileSync(path, 'utf8'));
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${path}: not a JSON object`);
  return v;
}

function merge(oursPath, fromPath, label) {
  if (!fs.existsSync(fromPath)) {
    console.log(`(nothing to merge: no ${fromPath})`);
    return;
  }
  const ours = fs.existsSync(oursPath) ? readObject(oursPath) : {};
  const from = readObject(fromPath);
  const added = Object.keys(from).filter((k) => !(k in ours));
  const figures = added.filter((k) => !['device', 'emulated', 'smoke'].includes(k));
  for (const k of added) ours[k] = from[k];
  if (figures.length > 0) ours[`merged.${label}`] = [...(ours[`merged.${label}`] ?? []), ...figures];
  writeAtomic(oursPath, ours);
  fs.rmSync(fromPath);
  console.log(`${figures.length} figure(s) of ${fromPath} added to ${oursPath}${figures.length > 0 ? ` (listed as merged.${label})` : ''}`);
}

/** JSON text of Python's json.dump, NaN and ±Infinity as null. */
const pythonJson = (text) => JSON.parse(text.replace(/(:\s*)-?(NaN|Infinity)\b/g, '$1null'));

/** The JSON objects printed whole in `text`: each a "{" line through the next "}" line (json.dumps with indent). */
function printedBlocks(text) {
  const blocks = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== '{') continue;
    const end = lines.indexOf('}', i + 1);
    if (end < 0) break; // cut off while printing
    try {
      blocks.push(pythonJson(lines.slice(i, end + 1).join('\n')));
      i = end;
    } catch {
      // not one of its blocks (or a cut one): look on from the next line
    }
  }
  return blocks;
}

function anchor(anchorPath, logPath, why) {
  if (fs.existsSync(anchorPath)) {
    const text = fs.readFileSync(anchorPath, 'utf8');
    try {
      JSON.parse(text);
      return; // as the script wrote it
    } catch {
      try {
        writeAtomic(anchorPath, pythonJson(text));
        console.log(`${anchorPath}: NaN / Infinity written as null`);
        return;
      } catch {
        console.log(`${anchorPath} is cut short: rebuilt from ${logPath}`);
      }
    }
  }
  const blocks = fs.existsSync(logPath) ? printedBlocks(fs.readFileSync(logPath, 'utf8')) : [];
  if (blocks.length === 0) {
    console.log(`no anchor.json rebuilt: ${logPath} has no complete JSON block`);
    process.exit(1);
  }
  const rebuilt = Object.assign({}, ...blocks, { rebuilt_from_log: why });
  writeAtomic(anchorPath, rebuilt);
  console.log(`${anchorPath} rebuilt from ${blocks.length} JSON block(s) of ${logPath}: ${Object.keys(rebuilt).length - 1} figure(s)`);
}

const [cmd, ...rest] = process.argv.slice(2);
if (cmd === 'merge' && rest.length === 3) merge(...rest);
else if (cmd === 'anchor' && rest.length === 3) anchor(...rest);
else {
  console.error('usage: node scripts/gpu/loan-json.cjs merge OURS FROM LABEL | anchor ANCHOR REF_LOG WHY');
  process.exit(2);
}
