/**
 * `kdloss eval`: reads the student/teacher logits (and optional labels) in chunks (chunks.ts),
 * computes each chunk with {@link DistillationLoss.forwardAsync} while the next one is read, adds the
 * chunk's rows to an {@link EvalAccumulator} and writes the per-sample losses as they come. 16-bit
 * logits go to the library as they are stored (`{ data: Uint16Array, rows, cols, dtype }`); a sparse
 * teacher's entries as the library's SparseTeacher (sparse-teacher.ts).
 * @module
 */
import { setTimeout as sleep } from 'timers/promises';
import { CrossEntropyLoss, DistillationLoss, type Divergence, getBackend, isa, type Matrix, type SparseTeacher } from '../index';
import { EvalAccumulator } from './accumulator';
import { type Chunk, ChunkReader, closeInputs, type EvalInputs, type LogitsArray, openInputs } from './chunks';
import { FileError, InterruptedError, STOP_SIGNALS } from './errors';
import { NpyF64Writer } from './npy';
import type { NamedInput } from './output';
import { shardRange, type ShardSpec } from './shards';
import type { ArraySource, InputFile, LogitsType } from './source';
import type { SparseSource, SparseTeacherSpec } from './sparse-teacher';
import { type EvalInputsInfo, type EvalSettings, type EvalSummary, type InputInfo, type ShardInfo, summarize } from './summary';

export type { ClassTotals } from './accumulator';
export type { HistogramBin, KlHistogram } from './histogram';
export type { EvalSummary } from './summary';

/** The ignore index when none is given (PyTorch's and the library's). */
export const DEFAULT_IGNORE_INDEX = -100;

/** What `kdloss eval` is asked to do. */
export interface EvalConfig {
  /** Student logits: .npy or safetensors, float, rank >= 2 (the last axis is the classes). */
  student: string;
  /** Teacher logits: same rows, classes and dtype (or `sparseTeacher`). */
  teacher?: string;
  /** A sparse (top-k) teacher instead of `teacher`. */
  sparseTeacher?: SparseTeacherSpec;
  /** Optional labels: integer class indices of the logits' leading shape, or one-hot rows. */
  labels?: string;
  /** The tensors of safetensors files (default: the file's only tensor). */
  studentKey?: string;
  teacherKey?: string;
  labelsKey?: string;
  temperature: number;
  /** Weight of the soft term; forced to 1 without labels. */
  alpha: number;
  /** The soft term's divergence (default 'kl'). */
  divergence?: Divergence;
  /** The beta of 'jsd' (default 0.5). */
  beta?: number;
  /** Multiply the soft term by T^2 (default true). */
  temperatureScaling?: boolean;
  /** Labels equal to it leave their row out of everything (default {@link DEFAULT_IGNORE_INDEX}). */
  ignoreIndex?: number;
  /** Evaluate only this shard's rows (default: every row). */
  shard?: ShardSpec;
  /** Where to write each row's loss as a 1-D float64 .npy (the shard's rows). */
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

/** A chunk of logits as the library takes it: 16-bit formats with their dtype. */
function matrixOf(data: LogitsArray, rows: number, cols: number, dtype: LogitsType): Matrix {
  if (dtype === 'float32' || dtype === 'float64') return { data: data as Float32Array | Float64Array, rows, cols };
  return { data, rows, cols, dtype } as unknown as Matrix;
}

/** What identifies the inputs in the JSON report. */
async function describeInputs(inputs: EvalInputs): Promise<EvalInputsInfo> {
  const prints = new Map<InputFile, Promise<string>>();
  const info = async (file: InputFile, a: ArraySource): Promise<InputInfo> => {
    if (!prints.has(file)) prints.set(file, file.fingerprint());
    return { file: a.file, format: a.format, key: a.key, shape: [...a.shape], dtype: a.dtype!, bytes: file.size, fingerprint: await prints.get(file)! };
  };
  const { fileOf, sparse } = inputs;
  const described: EvalInputsInfo = {
    student: await info(fileOf.student, inputs.student.array),
    teacher: inputs.teacher && fileOf.teacher ? await info(fileOf.teacher, inputs.teacher.array) : null,
    labels: inputs.labels && fileOf.labels ? await info(fileOf.labels, inputs.labels.array) : null,
  };
  if (sparse) {
    described.teacherIndices = await info(sparse.indicesFile, sparse.indices.array);
    described.teacherValues = await info(sparse.valuesFile, sparse.values.array);
  }
  return described;
}

/**
 * A library InputError on a sparse teacher's entries the checks of sparse-teacher.ts let through (its
 * bounds are the library's; only a log-probability sum within rounding of the bound may differ): the
 * values' file, and the row in it.
 */
export function sparseEntryError(err: unknown, sparse: SparseSource, firstRow: number): unknown {
  if ((err as { code?: unknown })?.code !== 'ERR_KD_INPUT') return err;
  const m = /^teacher row (\d+): (.*)$/s.exec((err as Error).message);
  if (m === null) return err;
  return new FileError(sparse.values.array.file, `row ${firstRow + Number(m[1])}: ${m[2]}`);
}

/** A chunk's teacher as the library takes it: dense logits or the sparse teacher's entries. */
function teacherOf(chunk: Chunk, inputs: EvalInputs): Matrix | SparseTeacher {
  const n = chunk.rows;
  const sp = inputs.sparse;
  if (sp === null) return matrixOf(chunk.teacher!, n, inputs.cols, inputs.dtype);
  const { k, kind, tail } = sp.settings;
  return { indices: chunk.sparse!.indices, values: chunk.sparse!.values, rows: n, k, kind, tail };
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
    const { rows, cols, dtype } = inputs;
    const hasLabels = inputs.labels !== null;
    const T = config.temperature;
    const alpha = hasLabels ? config.alpha : 1;
    const ignoreIndex = hasLabels ? (config.ignoreIndex ?? DEFAULT_IGNORE_INDEX) : null;
    // Without labels the hard term is left out of everything: class 0 stands in for every label,
    // and no row is ignored.
    const divergence = config.divergence ?? 'kl';
    const beta = divergence === 'jsd' ? (config.beta ?? 0.5) : null;
    const temperatureScaling = config.temperatureScaling ?? true;
    const kd = new DistillationLoss(T, alpha, new CrossEntropyLoss({ ignoreIndex: ignoreIndex ?? DEFAULT_IGNORE_INDEX }), {
      divergence,
      beta: beta ?? undefined,
      temperatureScaling,
    });
    const softWeight = temperatureScaling ? alpha * T * T : alpha;
    const shard = config.shard;
    const { start, end } = shard ? shardRange(rows, shard.index, shard.count) : { start: 0, end: rows };
    const count = end - start;
    const chunkRows = Math.max(1, Math.min(count, config.chunkRows ?? defaultChunkRows(inputs.student.rowBytes)));
    const reader = count > 0 ? new ChunkReader(inputs, chunkRows, { given: config.chunkRows !== undefined, start, end, ignoreIndex }) : null;
    const noLabels = hasLabels ? null : new Int32Array(chunkRows);
    const acc = new EvalAccumulator(cols, hasLabels, ignoreIndex);
    const described = describeInputs(inputs);
    described.catch(() => undefined); // awaited below; not unhandled while the rows are read

    if (config.perSample !== undefined) {
      const named: NamedInput[] = (['student', 'teacher', 'labels'] as const).flatMap((flag) => {
        const source = inputs[flag];
        return source ? [{ flag, file: source.array.file, identity: source.array.identity }] : [];
      });
      if (inputs.sparse) {
        for (const [flag, a] of [
          ['teacher-indices', inputs.sparse.indices.array],
          ['teacher-values', inputs.sparse.values.array],
        ] as const) {
          named.push({ flag: inputs.sparse.indicesFile === inputs.sparse.valuesFile ? 'teacher-topk' : flag, file: a.file, identity: a.identity });
        }
      }
      writer = await NpyF64Writer.create(config.perSample, count, named);
    }
    config.onStart?.({ rows: count, cols, dtype, chunkRows });
    const testDelay = Number(process.env.KDLOSS_CLI_TEST_DELAY_MS) || 0; // tests: slows each chunk down

    const t0 = performance.now();
    if (signal?.aborted) throw interrupted();
    try {
      for await (const chunk of reader?.chunks() ?? []) {
        if (signal?.aborted) throw interrupted();
        const n = chunk.rows;
        let res;
        try {
          res = await kd.forwardAsync(matrixOf(chunk.student, n, cols, dtype), teacherOf(chunk, inputs), chunk.labels ?? noLabels!.subarray(0, n), {
            reduction: 'none',
            argmax: true,
            threads: config.threads,
            signal,
          });
        } catch (err) {
          if (isAbort(err) || signal?.aborted) throw interrupted();
          throw inputs.sparse ? sparseEntryError(err, inputs.sparse, chunk.row) : err;
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
        config.onProgress?.(done, count);
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
    const seconds = (performance.now() - t0) / 1000;
    if (writer) {
      await writer.close();
      writer = null;
    }
    const info = await described;
    const settings: EvalSettings = {
      temperature: T,
      alpha,
      requestedAlpha: config.alpha,
      divergence,
      beta,
      temperatureScaling,
      ignoreIndex,
      cols,
      dtype,
      labels: inputs.labels ? { kind: inputs.labelsKind!, dtype: inputs.labels.array.dtype! } : null,
    };
    if (inputs.sparse) settings.teacher = { ...inputs.sparse.settings };
    const shardInfo: ShardInfo | null = shard ? { index: shard.index, count: shard.count, rowStart: start, rowEnd: end, totalRows: rows } : null;
    return summarize(settings, info, shardInfo, acc, {
      seconds,
      chunkRows,
      threads: config.threads ?? null,
      backend: getBackend(),
      isa: getBackend() === 'native' ? isa() : null,
      perSample: config.perSample ?? null,
      merged: null,
    });
  } catch (err) {
    if (writer) await writer.discard();
    throw err;
  } finally {
    await closeInputs(inputs);
  }
}
