// `l2e pull`: download a model or dataset repo from the Hugging Face Hub into the shared cache.
import { snapshotDownload } from '../hub/download.js';
import { LOCK_STALE_MS } from '../hub/blob-lock.js';
import { retryNotices } from '../hub/download-notices.js';
import { missingModelFiles, MODEL_FILES } from '../hub/resolve.js';
import { counted } from '../util/plural.js';
import { opt, UsageError } from './args.js';
import type { Command } from './command.js';
import { ProgressBar } from './progress.js';
import { formatBytes } from '../util/format-bytes.js';

export const command: Command = {
  name: 'pull',
  positionals: true,
  summary: 'download a model or dataset from the Hugging Face Hub into the cache',
  usage: `Usage: l2e pull <org/name> [--revision R] [--include GLOB ...] [--repo-type model|dataset] [--cache-dir D]

Downloads into the huggingface_hub cache layout ({cache}/models--org--name/{blobs,snapshots,refs}),
shared with Python tools. Default cache: $HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub.
Honours HF_ENDPOINT and HF_TOKEN (private or gated repos; else HUGGING_FACE_HUB_TOKEN, or the token
file \`huggingface-cli login\` writes: HF_TOKEN_PATH, default $HF_HOME/token); with HF_HUB_OFFLINE=1
it only finds the cached snapshot. Partial downloads resume; LFS files are checked against their
sha256. Models default to ${MODEL_FILES.join(' ')}; --include '*' takes all, --include sub/ a
folder's files. Prints the snapshot folder.`,
  options: {
    revision: { kind: 'string', help: 'branch, tag or commit', default: 'main' },
    include: { kind: 'list', help: 'glob of files to fetch (repeatable)', metavar: 'GLOB' },
    'repo-type': { kind: 'string', help: 'model or dataset', default: 'model' },
    'cache-dir': { kind: 'string', help: 'cache folder', metavar: 'D' },
  },
  async run(args) {
    if (args.positionals.length !== 1) throw new UsageError('give one repo id, e.g. mesolitica/llama2-embedding-600m-8k');
    const repoType = opt.str(args, 'repo-type');
    if (repoType !== 'model' && repoType !== 'dataset') throw new UsageError(`--repo-type must be model or dataset, got ${repoType}`);
    const include = opt.list(args, 'include');
    const bars = new Map<string, ProgressBar>();
    const result = await snapshotDownload(args.positionals[0]!, {
      revision: opt.str(args, 'revision'),
      repoType,
      include: include.length ? include : repoType === 'model' ? MODEL_FILES : undefined,
      cacheDir: opt.str(args, 'cache-dir'),
      retry: { onRetry: retryNotices((m) => process.stderr.write(`${m}\n`)) },
      // said, not a silent wait: the other pull may be long, or a process that is not one holds the lock
      onWait: (file, holder, lock) =>
        process.stderr.write(`waiting for ${file}: process ${holder} is fetching it into this cache (${lock}; remove that file if process ${holder} is not a pull; another host's lock left untouched for ${LOCK_STALE_MS / 60_000} minutes is taken over)\n`),
      onProgress: (file, done, total) => {
        let bar = bars.get(file);
        // not a terminal (a log, CI): a plain line at each tenth
        if (!bar) bars.set(file, (bar = new ProgressBar({ label: file, total: total ?? 0, format: (n) => formatBytes(Math.round(n)), plainLines: true })));
        bar.update(done);
        if (total !== undefined && done >= total) {
          bar.finish();
          bars.delete(file);
        }
      },
    });
    for (const bar of bars.values()) bar.finish();
    const how = result.offline ? 'from the cache; HF_HUB_OFFLINE is set, so the Hub was not asked for newer files' : `${result.downloaded.length} downloaded`;
    process.stderr.write(`${counted(result.files.length, 'file')} (${how}) at ${result.commit}\n`);
    // offline, what is not cached is not known to be missing from the repo: the snapshot's gaps are said
    const lacking = repoType === 'model' && !include.length && result.offline ? missingModelFiles(result.dir) : [];
    if (lacking.length) {
      process.stderr.write(
        `warning: model repo ${args.positionals[0]!}: its snapshot in the cache (${result.dir}) lacks ${lacking.join(', ')}, and HF_HUB_OFFLINE is set, ` +
          'so it was not downloaded: a pull without HF_HUB_OFFLINE fetches what the repo has of them\n',
      );
    } else if (repoType === 'model' && !include.length && !result.offline && !result.files.some((f) => f.endsWith('.safetensors'))) {
      // (a repo with only pytorch_model.bin "pulled" and then failed to load)
      process.stderr.write(
        'warning: the repo has no .safetensors weights: l2e reads a model\'s weights only from safetensors files ' +
          '(convert them, e.g. with transformers: save_pretrained(dir, safe_serialization=True))\n',
      );
    }
    process.stdout.write(`${result.dir}\n`);
    return 0;
  },
};
