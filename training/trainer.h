// The trainer: one rank's training loop over the pipeline executor, with expert and data
// parallelism, AdamW, checkpoints, metrics and traces.
//
// World = PP x EP x DP (comm::ParallelGroups). Each (EP, DP) coordinate is a pipeline running the
// schedule over its own data shard; the EP ranks of a pipeline stage exchange tokens for their
// experts inside the model. After a step's executor run, gradients are combined: DualPipe's two
// copies of a stage summed over the pipeline group, the weights every expert rank holds summed
// over the EP group, everything over the DP group; then clipped by the global norm and applied by
// AdamW on every copy alike, so the copies stay equal bit for bit. With parallel.zero1 (ZeRO-1) and
// dp > 1, each DP replica holds AdamW's moments for, and updates, only its 1/dp slice of each
// stage's parameters, and the replicas then all-gather the updated slices: the same updates bit
// for bit, with the optimizer state per rank cut to 1/dp. Checkpoints are the same files either
// way (DP replica 0 gathers the moments to write them), so a run may resume with zero1 changed.
//
//   ASSIGN_OR_RETURN(PreparedData data, PrepareData(config, output_dir));
//   comm::RunLocalRanks(world_size, [&](comm::Communicator& world) {
//     return TrainRank(config, options, data, world).status();
//   });
#ifndef TRAINING_TRAINER_H_
#define TRAINING_TRAINER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "comm/communicator.h"
#include "model/tokenizer/tokenizer.h"
#include "training/config.pb.h"
#include "training/data/token_cache.h"

namespace training {

// The tokenizer and the tokenized corpus, shared read-only by the ranks of one process.
struct PreparedData {
  std::shared_ptr<const tokenizer::Tokenizer> tokenizer;
  std::string tokenizer_json;  // its file's contents, copied into checkpoints
  std::shared_ptr<const data::TokenizedCorpus> corpus;
  int32_t eos_id = 0;
  // Entropy (nats per token) of the corpus's unigram distribution: the loss of a model that knows
  // only token frequencies, the bar a trained model must get well below.
  double unigram_entropy = 0;
  std::string summary;  // one line: documents, tokens, files skipped, cache reused or built
};

// Loads (or, without data.tokenizer, trains once and caches) the tokenizer and tokenizes the
// corpus into a cached token stream under the cache directory (data.cache_dir, or
// OUTPUT_DIR/cache). Errors name the file: a missing path, an empty corpus, a vocabulary larger
// than the model's.
absl::StatusOr<PreparedData> PrepareData(const TrainingConfig& config,
                                         const std::string& output_dir);

struct TrainerOptions {
  std::string output_dir;    // checkpoints/, metrics.jsonl, loss.svg, traces/, expert_loads/
  bool resume = false;       // continue from the newest complete checkpoint
  int trace_first_step = 0;  // write Chrome traces of steps [first, last] (1-based); 0: none
  int trace_last_step = 0;
  double peak_gflops = 0;     // for MFU; 0: world rank 0 measures it (MeasurePeakGflops)
  bool progress_bar = false;  // draw a progress bar (on a terminal) instead of plain log lines
  // Set (e.g. by a signal handler) to stop after the current step with a checkpoint.
  const std::atomic<bool>* stop = nullptr;
  // Stop after this step (1-based) as if `stop` had been set then; 0: run to config.steps.
  int64_t stop_after_step = 0;
  // Fault injection (tests): world rank `fail_rank` fails in its first forward of step
  // `fail_at_step` (1-based) with INTERNAL, as a crashing stage would; 0: never.
  int fail_rank = 0;
  int64_t fail_at_step = 0;
};

struct TrainSummary {
  int64_t steps = 0;          // the step the run ended at
  double final_loss = 0;      // training loss of the last step
  double val_loss = 0;        // validation loss at the end
  std::string checkpoint;     // the last checkpoint written
  std::vector<float> losses;  // the training loss of every step of this run, in order
  // AdamW state this rank holds: exp_avg and exp_avg_sq elements of all its stages (ZeRO-1: of
  // its slices only).
  int64_t optimizer_state_floats = 0;
};

// Trains on this rank of `world` (collective: every rank of the world calls it). Returns the
// summary (on every rank), or the first error: a config that does not fit world.size(), data too
// small for a step, a checkpoint of another model, a communication error naming the rank and op.
absl::StatusOr<TrainSummary> TrainRank(const TrainingConfig& config, const TrainerOptions& options,
                                       const PreparedData& data, comm::Communicator& world);

// For --resume, before any work: OK if the newest complete checkpoint under OUTPUT_DIR/checkpoints
// can continue this run: it holds this config's model (the fields of its model.textproto that
// shape the weights are equal) and as many data shards (ep x dp). NOT_FOUND when there is no
// checkpoint; INVALID_ARGUMENT naming the checkpoint and the first difference otherwise.
absl::Status CheckResume(const TrainingConfig& config, const std::string& output_dir);

// True for errors TrainRank returns before its first step (a layout that does not fit the world,
// too little data for a step, a checkpoint it cannot resume from): bad input, not a failed run.
bool IsSetupError(const absl::Status& status);

// One core's best SGEMM rate times the cores, in GFLOP/s: the peak MFU is measured against when
// TrainerOptions::peak_gflops is 0. Takes a few milliseconds; run it on an idle machine.
double MeasurePeakGflops();

// Gives each BLAS call max(1, cores / ranks_per_machine) threads (OpenBLAS's setting is per
// process), unless OPENBLAS_NUM_THREADS is set, which wins. Ranks as threads must not share
// OpenBLAS's thread pool: its workers spin, and four ranks on two cores calling it at once ran
// 5-20x slower than with one thread per call. Returns the count in effect.
int SetBlasThreadsPerRank(int ranks_per_machine);

// FLOPs of one training token (forward and backward: 6 per active weight plus attention).
double TrainingFlopsPerToken(const model::ModelConfig& config, int seq_len);

// Parameters of the whole model, and those active per token (embedding and head included).
struct ParameterCount {
  int64_t total = 0;
  int64_t active = 0;
};
// Counts every tensor of the model (norm scales and the gates' selection biases included); a
// routed expert counts as active for top_k of them per token. DeepSeek-V3: 671.0e9 and 37.6e9.
ParameterCount CountParameters(const model::ModelConfig& config);

// Parameters of a model stage: layers [begin_layer, end_layer), plus the embedding on the first
// stage and the final norm and LM head on the last. `replicated` is what every expert rank of the
// stage holds; `routed_experts` is split evenly over the EP ranks.
struct StageParameterCount {
  int64_t replicated = 0;
  int64_t routed_experts = 0;
};
StageParameterCount CountStageParameters(const model::ModelConfig& config, int begin_layer,
                                         int end_layer, bool has_embedding, bool has_head);

}  // namespace training

#endif  // TRAINING_TRAINER_H_
