/**
 * `kdloss eval`: reads the student/teacher logits (and optional labels) in chunks (chunks.ts),
 * computes each chunk with {@link DistillationLoss.forwardAsync} while the next one is read, adds the
 * chunk's rows to an {@link EvalAccumulator} and writes the per-sample losses as they come.
 * @module
 */
import { setTimeout as sleep } from 'timers/promises';
import { DistillationLoss, getBackend, isa } from '../index';
import type { DType } from '../matrix';
import { EvalAccumulator, type ClassTotals } from './accumulator';
import { ChunkReader, closeInputs, type EvalInputs, type LabelsKind, openInputs } from './chunks';
import { InterruptedError, STOP_SIGNALS } from './errors';
import type { KlHistogram } from './histogram';
import { NpyF64Writer } from './npy';

export type { ClassTotals } from './accumulator';
export type { HistogramBin, KlHistogram } from './histogram';

/** What `kdloss eval` is asked to do. */
export interface EvalConfig {
  /** Student logits: 2-D float32/float64 .npy. */
  student: string;
  /** Teacher logits: same shape and dtype. */
  teacher: string;
  /** Optional labels: 1-D integer class indices, or a one-hot float matrix of the logits' shape. */
  labels?: string;
  temperature: number;
  /** Weight of the soft term; forced to 1 without labels. */
  alpha: number;
  /** Where to write each row's loss as a 1-D float64 .npy. */
  perSample?: string;
  /** Threads per chunk (default: the library's default for async calls). */
  threads?: number;
  /** Rows per chunk (default: about {@link DEFAULT_CHUNK_BYTES} per input, at most {@link MAX_CHUNK_ROWS}). */
  chunkRows?: number;
  /**
   * Aborting stops reading and the in-flight computation; {@link evaluate} then rejects with an
   * InterruptedError for the signal given as the abort's reason ('SIGINT', 'SIGTERM', 'SIGHUP').
   */
  signal?: AbortSignal;
  /** Called after each chunk with the rows done so far. */
  onProgress?: (rowsDone: number, rowsTotal: number) => void;
  /** Called once the files are open and checked, before the first chunk. */
  onStart?: (info: { rows: number; cols: number; dtype: string; chunkRows: number }) => void;
}

/** The outcome of an evaluation. */
export interface EvalSummary {
  files: { student: string; teacher: string; labels: string | null; perSample: string | null };
  rows: number;
  cols: number;
  dtype: DType;
  /** 'indices' (1-D integers), 'one-hot' (float matrix) or null without labels. */
  labelsKind: LabelsKind | null;
  labelsDtype: string | null;
  temperature: number;
  /** The alpha the loss was computed with (1 without labels). */
  alpha: number;
  /** The alpha given on the command line. */
  requestedAlpha: number;
  /** alpha * T^2 * soft + (1 - alpha) * hard: the library's mean loss over all rows. */
  loss: number;
  /** Mean per-row KL(p_t || p_s) at T, unweighted (the library's `soft`). */
  soft: number;
  /** Mean per-row cross-entropy of the student against the labels (null without labels). */
  hard: number | null;
  /** Fraction of rows where student and teacher top-1 classes agree. */
  agreement: number;
  agreementCount: number;
  studentAccuracy: number | null;
  teacherAccuracy: number | null;
  studentCorrect: number | null;
  teacherCorrect: number | null;
  perClass: ClassTotals[] | null;
  klHistogram: KlHistogram;
  seconds: number;
  rowsPerSecond: number;
  chunkRows: number;
  /** Threads per chunk as requested (null: the library's default). */
  threads: number | null;
  backend: string;
  isa: string | null;
}

/** Default chunk size per input, in bytes. */
export const DEFAULT_CHUNK_BYTES = 2 << 20;
/** Default upper bound of rows per chunk. */
export const MAX_CHUNK_ROWS = 65536;

/** Default rows per chunk for rows of `rowBytes` bytes. */
export function defaultChunkRows(rowBytes: number): number {
  return Math.max(1, Math.min(MAX_CHUNK_ROWS, Math.floor(DEFAULT_CHUNK_BYTES / Math.max(1, rowBytes))));
}

function isAbort(err: unknown): boolean {
  return (err as { name?: string })?.name === 'AbortError' || (err as { code?: string })?.code === 'ABORT_ERR';
}

/** The summary of an accumulated evaluation (loss from the library's formula alpha T^2 soft + (1 - alpha) hard). */
function summarize(config: EvalConfig, inputs: EvalInputs, acc: EvalAccumulator, alpha: number, seconds: number, chunkRows: number): EvalSummary {
  const t = acc.totals();
  const T = config.temperature;
  const rows = t.rows;
  const hasLabels = t.hard !== null;
  const loss = alpha * T * T * t.soft + (hasLabels ? (1 - alpha) * t.hard! : 0);
  return {
    files: { student: config.student, teacher: config.teacher, labels: config.labels ?? null, perSample: config.perSample ?? null },
    rows,
    cols: inputs.cols,
    dtype: inputs.dtype,
    labelsKind: inputs.labelsKind,
    labelsDtype: inputs.labels ? inputs.labels.dtype : null,
    temperature: T,
    alpha,
    requestedAlpha: config.alpha,
    loss,
    soft: t.soft,
    hard: t.hard,
    agreement: t.agreementCount / rows,
    agreementCount: t.agreementCount,
    studentAccuracy: hasLabels ? t.studentCorrect! / rows : null,
    teacherAccuracy: hasLabels ? t.teacherCorrect! / rows : null,
    studentCorrect: t.studentCorrect,
    teacherCorrect: t.teacherCorrect,
    perClass: t.perClass,
    klHistogram: t.klHistogram,
    seconds,
    rowsPerSecond: seconds > 0 ? rows / seconds : rows,
    chunkRows,
    threads: config.threads ?? null,
    backend: getBackend(),
    isa: getBackend() === 'native' ? isa() : null,
  };
}

/**
 * Runs the evaluation.
 * @throws FileError / CliError for bad input (exit code 2); InterruptedError when `signal` aborts
 */
export async function evaluate(config: EvalConfig): Promise<EvalSummary> {
  const signal = config.signal;
  let done = 0;
  // The reason an abort gives is the signal that stopped the run (SIGINT when it gives none).
  const interrupted = (): InterruptedError =>
    new InterruptedError(done, STOP_SIGNALS.find((s) => s === signal?.reason) ?? 'SIGINT');
  const inputs = await openInputs(config);
  let writer: NpyF64Writer | null = null;
  try {
    const { rows, cols } = inputs;
    const hasLabels = inputs.labels !== null;
    const T = config.temperature;
    const alpha = hasLabels ? config.alpha : 1;
    const kd = new DistillationLoss(T, alpha);
    const softWeight = alpha * T * T;
    const chunkRows = Math.min(rows, config.chunkRows ?? defaultChunkRows(inputs.student.rowBytes));
    const reader = new ChunkReader(inputs, chunkRows, config.chunkRows !== undefined);
    // Without labels the hard term is left out of everything: any class index will do.
    const noLabels = hasLabels ? null : new Int32Array(chunkRows);
    const acc = new EvalAccumulator(cols, hasLabels);

    if (config.perSample !== undefined) {
      const named = (['student', 'teacher', 'labels'] as const).flatMap((flag) => {
        const source = inputs[flag];
        return source ? [{ flag, file: source.file, identity: source.identity }] : [];
      });
      writer = await NpyF64Writer.create(config.perSample, rows, named);
    }
    config.onStart?.({ rows, cols, dtype: inputs.dtype, chunkRows });
    const testDelay = Number(process.env.KDLOSS_CLI_TEST_DELAY_MS) || 0; // tests: slows each chunk down

    const start = performance.now();
    if (signal?.aborted) throw interrupted();
    try {
      for await (const chunk of reader.chunks()) {
        if (signal?.aborted) throw interrupted();
        const n = chunk.rows;
        let res;
        try {
          res = await kd.forwardAsync(
            { data: chunk.student, rows: n, cols },
            { data: chunk.teacher, rows: n, cols },
            chunk.labels ?? noLabels!.subarray(0, n),
            { reduction: 'none', argmax: true, threads: config.threads, signal },
          );
        } catch (err) {
          if (isAbort(err) || signal?.aborted) throw interrupted();
          throw err;
        }
        acc.add({
          rows: n,
          perSampleSoft: res.perSampleSoft!,
          perSampleHard: hasLabels ? res.perSampleHard! : null,
          studentArgmax: res.studentArgmax!,
          teacherArgmax: res.teacherArgmax!,
          labels: chunk.labels,
        });
        if (writer) {
          writer.check();
          writer.write(hasLabels ? res.perSample! : res.perSampleSoft!.map((v) => softWeight * v));
        }
        done += n;
        config.onProgress?.(done, rows);
        if (testDelay > 0) {
          try {
            await sleep(testDelay, undefined, { signal });
          } catch {
            throw interrupted();
          }
        }
      }
    } catch (err) {
      // A read that fails while the computation is aborted: the interruption is what happened.
      if (signal?.aborted && !(err instanceof InterruptedError)) throw interrupted();
      throw err;
    }
    if (writer) {
      await writer.close();
      writer = null;
    }
    return summarize(config, inputs, acc, alpha, (performance.now() - start) / 1000, chunkRows);
  } catch (err) {
    if (writer) await writer.discard();
    throw err;
  } finally {
    await closeInputs(inputs);
  }
}
