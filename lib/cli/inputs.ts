/**
 * The inputs of `kdloss eval`: the files opened (each once, whatever number of flags name it), the
 * arrays the flags select, checked against each other, and read as rows: logits of any rank >= 2 as
 * rows of classes (the last axis; the leading axes flattened, like view(-1, V)), labels of the
 * logits' leading shape (or that shape flattened) as one class index per row, or one-hot rows of the
 * logits' shape. The teacher is dense logits like the student's, or sparse: top-k entries per row
 * (sparse-teacher.ts).
 * @module
 */
import { CliError } from './errors';
import { arrayError, openInput, selectArray } from './formats';
import { shapeStr } from './npy';
import { type ArraySource, arrayName, type InputFile, isFloatType, type LogitsType, rowsOf, type RowSource } from './source';
import { checkSparseArrays, selectSparseArrays, type SparseArrays, type SparseSource, type SparseTeacherSpec } from './sparse-teacher';

export { arrayError } from './formats';

/** 'indices' (integer class indices) or 'one-hot' (float rows of the logits' shape). */
export type LabelsKind = 'indices' | 'one-hot';

/** The files and keys of an evaluation, as given on the command line. */
export interface InputFiles {
  student: string;
  /** Dense teacher logits; or `sparseTeacher`. */
  teacher?: string;
  sparseTeacher?: SparseTeacherSpec;
  labels?: string;
  studentKey?: string;
  teacherKey?: string;
  labelsKey?: string;
}

/** The opened and checked inputs of an evaluation. */
export interface EvalInputs {
  /** Every file opened, each once. */
  files: InputFile[];
  student: RowSource;
  /** Dense teacher logits (null with a sparse teacher). */
  teacher: RowSource | null;
  /** A sparse (top-k) teacher (null with a dense one). */
  sparse: SparseSource | null;
  labels: RowSource | null;
  /** The input files by role, for fingerprints and messages (the sparse teacher's in `sparse`). */
  fileOf: { student: InputFile; teacher: InputFile | null; labels: InputFile | null };
  /** Rows: the product of the logits' leading axes. */
  rows: number;
  /** Classes: the logits' last axis. */
  cols: number;
  dtype: LogitsType;
  labelsKind: LabelsKind | null;
}

/** Checks the logits' headers: float, rank >= 2, non-empty, student and (dense) teacher alike. */
function checkLogits(student: ArraySource, teacher: ArraySource | null): { rows: number; cols: number; dtype: LogitsType } {
  for (const a of teacher === null ? [student] : [student, teacher]) {
    if (!isFloatType(a.dtype)) {
      throw arrayError(a, `unsupported dtype ${a.typeName} for logits (expected float16, bfloat16, float32 or float64)`);
    }
    if (a.shape.length < 2) {
      throw arrayError(a, `expected logits of 2 or more axes (..., classes), got shape ${shapeStr(a.shape)}`);
    }
    if (a.shape[a.shape.length - 1] === 0) throw arrayError(a, `no classes (shape ${shapeStr(a.shape)})`);
    if (a.size === 0) throw arrayError(a, `no rows (shape ${shapeStr(a.shape)})`);
  }
  const cols = student.shape[student.shape.length - 1];
  const rows = student.size / cols;
  if (teacher === null) return { rows, cols, dtype: student.dtype as LogitsType };
  const tc = teacher.shape[teacher.shape.length - 1];
  const tr = teacher.size / tc;
  if (student.dtype !== teacher.dtype) {
    throw arrayError(teacher, `dtype ${teacher.dtype} does not match ${arrayName(student)} (${student.dtype}); student and teacher logits must share a dtype`);
  }
  if (tc !== cols) throw arrayError(teacher, `${tc} classes, but ${arrayName(student)} has ${cols} classes`);
  if (tr !== rows) throw arrayError(teacher, `${tr} rows, but ${arrayName(student)} has ${rows} rows`);
  return { rows, cols, dtype: student.dtype as LogitsType };
}

/** Checks the labels' header against the logits; returns the kind of labels. */
function checkLabels(labels: ArraySource, student: ArraySource, rows: number, cols: number): LabelsKind {
  const shape = labels.shape;
  const lead = student.shape.slice(0, -1);
  const same = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);
  if (labels.dtype === null) {
    throw arrayError(labels, `unsupported dtype ${labels.typeName} for labels (expected integer class indices or float one-hot rows)`);
  }
  if (isFloatType(labels.dtype)) {
    if (shape.length < 2) {
      throw arrayError(labels, `float labels must be one-hot rows of the logits' shape ${shapeStr(student.shape)}, got shape ${shapeStr(shape)}`);
    }
    const lc = shape[shape.length - 1];
    if (lc !== cols) throw arrayError(labels, `${lc} classes, but ${arrayName(student)} has ${cols} classes`);
    if (labels.size / lc !== rows) throw arrayError(labels, `${labels.size / lc} rows, but ${arrayName(student)} has ${rows} rows`);
    return 'one-hot';
  }
  if (same(shape, lead) || (shape.length === 1 && shape[0] === rows)) return 'indices';
  if (shape.length === 1) throw arrayError(labels, `${shape[0]} labels, but ${arrayName(student)} has ${rows} rows`);
  const flat = lead.length > 1 ? ` or ${shapeStr([rows])} flattened` : '';
  throw arrayError(
    labels,
    `integer labels must be class indices of the logits' leading shape ${shapeStr(lead)}${flat}, got shape ${shapeStr(shape)}`,
  );
}

/**
 * Opens the inputs and checks them against each other.
 * @throws FileError / CliError for a bad file or a mismatch (the files opened so far are closed)
 */
export async function openInputs(spec: InputFiles): Promise<EvalInputs> {
  const byName = new Map<string, InputFile>();
  const open = async (file: string): Promise<InputFile> => {
    let f = byName.get(file);
    if (f === undefined) {
      f = await openInput(file);
      byName.set(file, f);
    }
    return f;
  };
  try {
    const sf = await open(spec.student);
    const student = selectArray(sf, spec.studentKey, 'student');
    let tf: InputFile | null = null;
    let teacher: ArraySource | null = null;
    let sparseArrays: SparseArrays | null = null;
    if (spec.sparseTeacher !== undefined) {
      if (spec.teacher !== undefined || spec.teacherKey !== undefined) throw new CliError('a dense teacher (--teacher, --teacher-key) and a sparse one at once');
      sparseArrays = await selectSparseArrays(spec.sparseTeacher, open);
    } else {
      if (spec.teacher === undefined) throw new CliError('no teacher: --teacher FILE, or a sparse teacher (--teacher-topk FILE)');
      tf = await open(spec.teacher);
      teacher = selectArray(tf, spec.teacherKey, 'teacher');
    }
    const lf = spec.labels !== undefined ? await open(spec.labels) : null;
    if (lf === null && spec.labelsKey !== undefined) throw new CliError('--labels-key needs --labels FILE');
    const labels = lf !== null ? selectArray(lf, spec.labelsKey, 'labels') : null;
    const { rows, cols, dtype } = checkLogits(student, teacher);
    const sparse = sparseArrays === null ? null : checkSparseArrays(sparseArrays, spec.sparseTeacher!, student, rows, cols, dtype);
    const labelsKind = labels ? checkLabels(labels, student, rows, cols) : null;
    return {
      files: [...byName.values()],
      student: rowsOf(student, cols),
      teacher: teacher === null ? null : rowsOf(teacher, cols),
      sparse,
      labels: labels ? rowsOf(labels, labelsKind === 'one-hot' ? cols : 1) : null,
      fileOf: { student: sf, teacher: tf, labels: lf },
      rows,
      cols,
      dtype,
      labelsKind,
    };
  } catch (err) {
    await Promise.all([...byName.values()].map((f) => f.close()));
    throw err;
  }
}

/** Closes every input file. */
export async function closeInputs(inputs: EvalInputs): Promise<void> {
  await Promise.all(inputs.files.map((f) => f.close()));
}
