/**
 * The help texts of `kdloss` and its commands.
 * @module
 */

export const USAGE = `Usage: kdloss <command> [options]

Commands:
  eval     Evaluate distillation from .npy or .safetensors logits: KD loss, its KL and CE terms,
           teacher/student top-1 agreement, accuracies, a per-class table and a histogram of
           per-sample KL (whole files, or one shard of their rows)
  merge    Merge the --json reports of the shards of one evaluation into its report
  bench    Benchmark the kernels on this machine (results in ./kdloss-bench/)

Options:
  -h, --help       Show this help; kdloss <command> --help shows a command's options
  -v, --version    Print the version

Exit codes: 0 ok, 2 bad input or usage, 130 interrupted (Ctrl-C; 143 SIGTERM, 129 SIGHUP).
`;

export const EVAL_USAGE = `Usage: kdloss eval --student FILE --teacher FILE [--labels FILE] [options]
       kdloss eval --student FILE --teacher-topk FILE --teacher-kind logits|logprobs [options]

Streams student and teacher logits from NumPy .npy or safetensors files in row chunks (memory stays
bounded by the chunk size) and reports the distillation loss
  alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(softmax(s), labels)
(or another divergence, see --divergence)
(means over the evaluated rows, as DistillationLoss.forward computes it), its two terms,
teacher/student top-1 agreement, student and teacher accuracy, a per-class table, a histogram of
per-sample KL and the throughput.

Inputs:
  --student FILE       student logits: float16, bfloat16 (safetensors), float32 or float64, any rank
                       >= 2: the last axis is the classes, the leading axes are flattened into rows
                       (a [batch, sequence, vocab] dump gives batch * sequence rows)
  --teacher FILE       teacher logits: the same rows, classes and dtype as the student's
  --teacher-topk FILE  a sparse teacher instead: a safetensors file of tensors 'indices' (int32 or
                       int64 token ids, -1 for an unused slot) and 'values' (float32 or float64, the
                       student's dtype), both of shape [..., k] with the student's rows
  --teacher-indices FILE, --teacher-values FILE
                       the same two arrays as two files (.npy, or safetensors of one tensor each)
  --teacher-kind KIND  what the top-k values are (required with a sparse teacher): logits (softmax
                       at T over the entries) or logprobs (log-probabilities at T over the whole
                       vocabulary)
  --tail, --no-tail    logprobs: the mass outside the entries is one more bucket (--tail, the
                       default), or the entries are renormalised (--no-tail). Only KL is defined
                       with a sparse teacher (see docs/sparse-teachers.md)
  --labels FILE        class indices (any integer dtype) of the logits' leading shape ([batch,
                       sequence] for [batch, sequence, vocab] logits) or that shape flattened, or
                       one-hot float rows of the logits' shape. Without labels only the soft term
                       is defined: alpha is taken as 1 and accuracies are not reported
  --student-key NAME   the tensor of a safetensors file to read (default: the file's only tensor);
  --teacher-key NAME   student, teacher and labels may be tensors of one file
  --labels-key NAME
A file's format is read from its content (the .npy magic, or a safetensors header), not its name.
Data is little-endian and C order.

Options:
  --temperature T      softening temperature, > 0 (default 4)
  --alpha A            weight of the soft term, in [0, 1] (default 0.7)
  --divergence D       the soft term: kl (default, KL(p_t || p_s)), reverse-kl (KL(p_s || p_t)),
                       jsd (beta KL(p_t || m) + (1 - beta) KL(p_s || m), m = beta p_t + (1 - beta)
                       p_s) or tvd (1/2 sum |p_t - p_s|)
  --beta B             jsd's beta, strictly between 0 and 1 (default 0.5); for 0 or 1 use kl or
                       reverse-kl
  --no-temperature-scaling
                       do not multiply the soft term by T^2 (TRL, Liger and torchtune's convention)
  --ignore-index I     rows whose label is I are left out of every figure (default -100, as in
                       PyTorch); the report counts the evaluated and the ignored rows
  --shard i/n          evaluate only the i-th of n contiguous row ranges (1/4, 2/4, 3/4, 4/4); with
                       --json the report holds the partial sums that kdloss merge combines
  --per-sample FILE    write each row's loss (of the shard's rows) as a 1-D float64 .npy (0 for
                       ignored rows; through a temporary file in FILE's directory, renamed into place
                       once complete; FILE may not be an input)
  --json               print one JSON object instead of the text report. Non-finite numbers are
                       the strings "NaN", "Infinity" and "-Infinity"; null means "not defined"
                       (e.g. the hard term without labels)
  --threads N          threads per chunk (default: all cores for large chunks)
  --chunk-rows N       rows per chunk (default: about 2 MB per input, at most 65536)
  -h, --help           show this help

Inputs must be regular files (not FIFOs or devices). A progress bar is drawn on stderr when it is a
terminal. Ctrl-C stops cleanly (exit code 130; SIGTERM 143, SIGHUP 129), leaving no partial output.
Environment: KDLOSS_BACKEND=js selects the TypeScript backend, KDLOSS_BACKEND=native requires the
native one (an error if it is missing), KDLOSS_ISA=scalar|avx2|avx512|neon the kernel variant.
`;

export const MERGE_USAGE = `Usage: kdloss merge [--json] REPORT.json...

Merges the --json reports of kdloss eval --shard 1/n ... n/n (in any order) into the report of one
run over all the rows: the same text report, or with --json the same JSON. Counts and the histogram
add up exactly; the sums are exact sums rounded once, so the merged figures are those of one run
over the same per-row values, bit for bit.

Refused (exit code 2): a missing or repeated shard, reports of different splits, settings
(temperature, alpha, ignore index, labels), shapes, dtypes or input files (compared by size and a
fingerprint of their content, not by path), and malformed reports.

Options:
  --json       print one JSON object instead of the text report
  -h, --help   show this help
`;
