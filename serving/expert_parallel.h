// Expert parallelism with EPLB's redundant experts, ranks as threads in the serving process.
//
// Each MoE layer has num_routed_experts + num_redundant_experts physical experts ("replicas"),
// placed on `ep` ranks by an eplb::Placement (replica p lives on rank p / (replicas / ep)); each
// rank holds its own copy of its replicas' weights. Tokens are spread over the ranks (token t of a
// step is on rank t % ep, as attention data parallelism would hold them); a routed token goes to a
// replica of its logical expert on its own rank if there is one, else to the least busy replica
// so far in the step (ties broken by a seeded hash). Every rank runs its replicas' rows on its own
// thread. All replicas of an expert hold the same bytes and the kernels are batch invariant, so
// outputs do not depend on the placement or the replica chosen.
//
// Online EPLB: every step's tokens per logical expert and per physical expert go into
// eplb::LoadTrackers; every
// eplb_interval steps, or when the balancedness of the current placement under the window's loads
// drops below eplb_min_balancedness, a new placement is computed (eplb::Rebalance, refined policy)
// and diffed against the current one (eplb::DiffPlacements: fewest copies). The copies run on a
// background thread one layer at a time; at a step boundary a layer whose new weights are ready
// switches its routing and weights together. No step waits for a copy.
//
// Ranks as processes (`comm`, e.g. MPI under mpirun): rank 0 (the leader, which runs the engine)
// sends each other rank the rows of its replicas per MoE layer and receives their outputs while it
// computes its own; the other ranks run ServeWorker. Each rank holds only its own replicas'
// weights. A rebalance moves one layer per step: every rank derives the same copy plan from the
// old and new placement and the copies run as one batched point-to-point exchange.
//
// Not thread-safe but for Stats and Metrics: the engine's step thread calls everything else (the
// background copy is internal).
#ifndef SERVING_EXPERT_PARALLEL_H_
#define SERVING_EXPERT_PARALLEL_H_

#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "comm/communicator.h"
#include "core/thread_pool.h"
#include "eplb/load_tracker.h"
#include "eplb/placement.h"
#include "serving/incremental_model.h"
#include "serving/metrics.h"

namespace serving {

struct EpOptions {
  int ep = 1;                        // EP ranks (threads)
  int num_redundant_experts = 0;     // replicas per MoE layer beyond one per expert
  int64_t eplb_interval = 0;         // rebalance every N steps; 0: never on a schedule
  double eplb_min_balancedness = 0;  // rebalance when some layer's balancedness drops below
  int eplb_window = 64;              // steps of loads a rebalance looks at
  std::string placement_path;        // initial placement: //eplb:rebalance's JSON (phy2log used)
  std::string loads_csv_path;  // or: computed from these loads (the trainer's expert-load CSV)
  uint64_t seed = 1;           // of the replica choice's tie-breaking hash
  // If set, the EP ranks are this communicator's ranks (size ep; not owned; it must outlive the
  // ExpertParallel); else they are threads of this process.
  comm::Communicator* comm = nullptr;

  // INVALID_ARGUMENT naming the flag for a bad value or combination.
  absl::Status Validate() const;
};

struct EpStats {
  int64_t steps = 0;
  int64_t rebalances = 0;    // placements switched to (all layers in place)
  int64_t layers_moved = 0;  // layer switches
  int64_t experts_copied = 0;
  int64_t bytes_moved = 0;           // expert weights copied between ranks
  std::vector<double> balancedness;  // per MoE layer, of the current placement (window loads)
  // Per MoE layer, mean / max of the tokens the ranks actually computed over the window (from
  // the tokens counted per physical expert, after the replica choice).
  std::vector<double> observed_balancedness;
  std::vector<int64_t> rank_tokens;  // routed tokens each rank computed, all steps
  bool moving = false;
};

class ExpertParallel : public MoeExecutor {
 public:
  // Copies every routed expert of `model` (which must outlive this object) into the replicas of
  // the initial placement: placement_path's (trivial or JSON), else Rebalance of
  // loads_csv_path's loads, else Rebalance of uniform loads. INVALID_ARGUMENT for bad options or
  // files, or a replica count the ranks do not divide.
  static absl::StatusOr<std::unique_ptr<ExpertParallel>> Create(const IncrementalModel& model,
                                                                const EpOptions& options);
  ~ExpertParallel() override;

  absl::StatusOr<Mat> RunRoutedExperts(int64_t moe_layer, const Mat& x,
                                       absl::Span<const int32_t> experts, int64_t top_k) override;

  // Ranks other than 0 of options.comm: serves the leader's requests (expert rows, layer moves)
  // until it stops (the leader's destructor). Returns the communicator's errors.
  absl::Status ServeWorker();

  // After each step's forward: records the step's loads, installs a moved layer whose copy is
  // done, and starts a rebalance when one is due. Errors are the rebalancer's.
  absl::Status EndStep();
  // Waits for the copies in progress and installs them all (tests, shutdown).
  void FinishMoves();

  // As of the last EndStep or FinishMoves. Thread-safe.
  EpStats Stats() const;
  // The Prometheus text of EPLB's metrics. Thread-safe.
  std::string Metrics() const;
  // The current placement of every MoE layer (as eplb::Placement; rows are MoE layers).
  eplb::Placement CurrentPlacement() const;
  // True if every replica's weights are bit-identical to its logical expert's.
  bool ReplicasMatchExperts() const;

 private:
  struct Replica {
    Mat gate, up, down;
    FfnWeights weights() const { return {&gate, &up, &down}; }
  };
  struct LayerState {
    std::vector<int32_t> phy2log;                // [replicas]
    std::vector<std::vector<int32_t>> replicas;  // [experts]: physical indices, ascending
    std::vector<Replica> weights;                // [replicas]
  };
  struct Move {  // one layer of a rebalance in flight
    int64_t layer = 0;
    LayerState next;
    int64_t copies = 0;
  };

  ExpertParallel(const IncrementalModel& model, const EpOptions& options);
  absl::Status Install(const eplb::Placement& placement);  // initial
  static LayerState LayerFromPhy2Log(std::vector<int32_t> phy2log, int num_experts);
  absl::Status EndStepUnpublished();
  absl::Status StartRebalance();
  void StartNextLayer();
  // Installs the layer whose copy is done (precondition: copying_ is ready) and starts the next.
  void InstallCopied();
  int RankOf(int32_t replica) const { return replica / (num_replicas_ / options_.ep); }
  bool Owns(int32_t replica) const { return comm_ == nullptr || RankOf(replica) == rank_; }
  // Rows of this rank's replicas: rows[p] (slots) -> out rows, for replicas p of `rank`.
  void RunLocal(const LayerState& layer, int rank, const std::vector<std::vector<int64_t>>& rows,
                const Mat& x, int64_t top_k, Mat* out);
  // Every rank: switches `layer` to `phy2log`, receiving and sending the replicas' weights that
  // change rank. Returns the number of replicas copied between ranks.
  absl::StatusOr<int64_t> ExchangeLayer(int64_t layer, const std::vector<int32_t>& phy2log);
  // Leader: tells the workers to switch `move.layer`, and switches it here too.
  absl::Status MoveLayerAcrossRanks(const Move& move);

  const IncrementalModel& model_;
  EpOptions options_;
  comm::Communicator* comm_ = nullptr;
  int rank_ = 0;
  std::vector<int64_t> moe_layers_;
  int num_experts_;
  int num_replicas_;
  int num_groups_;
  core::ThreadPool ranks_;
  std::vector<LayerState> layers_;
  std::unique_ptr<eplb::LoadTracker> tracker_;           // logical experts: what Rebalance reads
  std::unique_ptr<eplb::LoadTracker> physical_tracker_;  // physical experts (replicas)
  std::vector<std::vector<int64_t>> step_loads_;         // [moe layer][expert], this step
  std::vector<std::vector<int64_t>> step_physical_;      // [moe layer][replica], this step
  EpStats stats_;
  mutable absl::Mutex published_mu_;
  EpStats published_ ABSL_GUARDED_BY(published_mu_);
  int64_t steps_since_rebalance_ = 0;
  // A rebalance in flight: the layers still to move, and the one being copied.
  std::vector<Move> pending_;
  std::future<Move> copying_;
  double rebalance_start_ = 0;
  Histogram rebalance_seconds_;
};

}  // namespace serving

#endif  // SERVING_EXPERT_PARALLEL_H_
