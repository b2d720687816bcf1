// One Trainer.fit of a model loaded from a folder, for the training tests: its notices collected, the
// run aborted after step `abortAt`, the model disposed after; a failure's notices kept (noticesOf).
import { EmbeddingModel } from '../../src/model/embedding-model.js';
import { Trainer, type FitResult, type StepInfo, type TrainerOptions } from '../../src/train/trainer.js';
import type { RowSource } from '../../src/data/pairs.js';

export interface Fitted {
  result: FitResult;
  notices: string[];
}

const failedNotices = new WeakMap<Error, string[]>();

/** What a failed fitOnce noticed before its error. */
export const noticesOf = (err: Error): string[] => failedNotices.get(err) ?? [];

export async function fitOnce(
  modelDir: string,
  options: TrainerOptions,
  data: RowSource,
  run: { abortAt?: number; onStep?: (s: StepInfo) => void | Promise<void> } = {},
): Promise<Fitted> {
  const model = await EmbeddingModel.load(modelDir);
  const notices: string[] = [];
  const controller = new AbortController();
  try {
    const result = await new Trainer(model, options).fit(data, {
      signal: controller.signal,
      onNotice: (m) => notices.push(m),
      onStep: async (s) => {
        await run.onStep?.(s);
        if (s.step === run.abortAt) controller.abort();
      },
    });
    return { result, notices };
  } catch (err) {
    failedNotices.set(err as Error, notices);
    throw err;
  } finally {
    model.dispose();
  }
}
