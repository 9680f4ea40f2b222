#include "serving/expert_parallel.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/status_macros.h"
#include "eplb/balancedness.h"
#include "eplb/loads_csv.h"
#include "eplb/placement_diff.h"
#include "eplb/rebalance.h"
#include "nlohmann/json.hpp"

namespace serving {
namespace {

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

uint64_t Mix(uint64_t x) {  // SplitMix64's finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

absl::Status EpOptions::Validate() const {
  if (ep < 1 || ep > 256) {
    return absl::InvalidArgumentError(absl::StrCat("--ep=", ep, ": must be in [1, 256]"));
  }
  if (num_redundant_experts < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--num_redundant_experts=", num_redundant_experts, ": must be >= 0"));
  }
  if (eplb_interval < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--eplb_interval=", eplb_interval, ": must be >= 0"));
  }
  if (!(eplb_min_balancedness >= 0 && eplb_min_balancedness <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--eplb_min_balancedness=", eplb_min_balancedness, ": must be in [0, 1]"));
  }
  if (eplb_window < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--eplb_window=", eplb_window, ": must be >= 1"));
  }
  if (!placement_path.empty() && !loads_csv_path.empty()) {
    return absl::InvalidArgumentError("give --eplb_placement or --eplb_loads_csv, not both");
  }
  return absl::OkStatus();
}

ExpertParallel::ExpertParallel(const IncrementalModel& model, const EpOptions& options)
    : model_(model),
      options_(options),
      moe_layers_(model.MoeLayers()),
      num_experts_(model.config().moe().num_routed_experts()),
      num_replicas_(num_experts_ + options.num_redundant_experts),
      num_groups_(model.config().moe().num_groups()),
      ranks_(options.ep),
      rebalance_seconds_({0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60}) {}

ExpertParallel::~ExpertParallel() { FinishMoves(); }

absl::StatusOr<std::unique_ptr<ExpertParallel>> ExpertParallel::Create(
    const IncrementalModel& model, const EpOptions& options) {
  RETURN_IF_ERROR(options.Validate());
  if (model.MoeLayers().empty()) {
    return absl::InvalidArgumentError("--ep / --num_redundant_experts: the model has no MoE layer");
  }
  std::unique_ptr<ExpertParallel> ep(new ExpertParallel(model, options));
  const int layers = static_cast<int>(ep->moe_layers_.size());
  if (ep->num_replicas_ % options.ep != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ep=", options.ep, " does not divide the ", ep->num_replicas_,
                     " physical experts per layer (", ep->num_experts_,
                     " routed + --num_redundant_experts=", options.num_redundant_experts, ")"));
  }
  ASSIGN_OR_RETURN(ep->tracker_,
                   eplb::LoadTracker::Create(layers, ep->num_experts_, options.eplb_window, 0.9));
  ep->step_loads_.assign(layers, std::vector<int64_t>(ep->num_experts_, 0));
  ep->stats_.rank_tokens.assign(options.ep, 0);
  if (!options.placement_path.empty()) {
    std::ifstream in(options.placement_path);
    std::stringstream text;
    text << in.rdbuf();
    const nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, false);
    if (!in || j.is_discarded() || !j.is_object() || !j.contains("phy2log") ||
        !j["phy2log"].is_array() || static_cast<int>(j["phy2log"].size()) != layers) {
      return absl::InvalidArgumentError(absl::StrCat("--eplb_placement=", options.placement_path,
                                                     ": not a placement JSON with phy2log of ",
                                                     layers, " MoE layers"));
    }
    for (const nlohmann::json& row : j["phy2log"]) {
      std::vector<int32_t> phy2log;
      bool ok = row.is_array() && static_cast<int>(row.size()) == ep->num_replicas_;
      for (size_t p = 0; ok && p < row.size(); ++p) {
        ok = row[p].is_number_integer() && row[p].get<int64_t>() >= 0 &&
             row[p].get<int64_t>() < ep->num_experts_;
        if (ok) phy2log.push_back(row[p].get<int32_t>());
      }
      LayerState state = ok ? LayerFromPhy2Log(phy2log, ep->num_experts_) : LayerState();
      for (const auto& r : state.replicas) ok = ok && !r.empty();
      if (!ok) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--eplb_placement=", options.placement_path, ": each phy2log row must hold ",
            ep->num_replicas_, " experts in [0, ", ep->num_experts_, "), each at least once"));
      }
      ep->layers_.push_back(std::move(state));
    }
    for (size_t l = 0; l < ep->layers_.size(); ++l) {
      LayerState& state = ep->layers_[l];
      for (int p = 0; p < ep->num_replicas_; ++p) {
        const FfnWeights& w = model.RoutedExpert(ep->moe_layers_[l], state.phy2log[p]);
        state.weights.push_back({*w.gate, *w.up, *w.down});
      }
    }
  } else {
    eplb::Matrix<double> loads(layers, ep->num_experts_, 1.0);
    if (!options.loads_csv_path.empty()) {
      ASSIGN_OR_RETURN(loads, eplb::ReadLoadsCsv(options.loads_csv_path));
      if (loads.rows() != layers || loads.cols() != ep->num_experts_) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--eplb_loads_csv=", options.loads_csv_path, ": ", loads.rows(), "x", loads.cols(),
            " loads for ", layers, " MoE layers of ", ep->num_experts_, " experts"));
      }
    }
    ASSIGN_OR_RETURN(eplb::Placement placement,
                     eplb::Rebalance(loads, ep->num_replicas_, ep->num_groups_, 1, options.ep,
                                     eplb::Policy::kRefined));
    RETURN_IF_ERROR(ep->Install(placement));
  }
  return ep;
}

ExpertParallel::LayerState ExpertParallel::LayerFromPhy2Log(std::vector<int32_t> phy2log,
                                                            int num_experts) {
  LayerState state;
  state.replicas.resize(num_experts);
  for (size_t p = 0; p < phy2log.size(); ++p) {
    state.replicas[phy2log[p]].push_back(static_cast<int32_t>(p));
  }
  state.phy2log = std::move(phy2log);
  return state;
}

absl::Status ExpertParallel::Install(const eplb::Placement& placement) {
  layers_.clear();
  for (size_t l = 0; l < moe_layers_.size(); ++l) {
    const auto row = placement.phy2log.row(static_cast<int>(l));
    LayerState state = LayerFromPhy2Log({row.begin(), row.end()}, num_experts_);
    for (int p = 0; p < num_replicas_; ++p) {
      const FfnWeights& w = model_.RoutedExpert(moe_layers_[l], state.phy2log[p]);
      state.weights.push_back({*w.gate, *w.up, *w.down});
    }
    layers_.push_back(std::move(state));
  }
  return absl::OkStatus();
}

eplb::Placement ExpertParallel::CurrentPlacement() const {
  const int layers = static_cast<int>(layers_.size());
  eplb::Placement p;
  p.num_gpus = options_.ep;
  p.num_nodes = 1;
  for (const LayerState& s : layers_) {
    for (const auto& r : s.replicas) p.max_replicas = std::max<int>(p.max_replicas, r.size());
  }
  p.phy2log = eplb::Matrix<int32_t>(layers, num_replicas_);
  p.log2phy = eplb::Matrix<int32_t>(layers, num_experts_ * p.max_replicas, -1);
  p.logcnt = eplb::Matrix<int32_t>(layers, num_experts_);
  for (int l = 0; l < layers; ++l) {
    for (int r = 0; r < num_replicas_; ++r) p.phy2log(l, r) = layers_[l].phy2log[r];
    for (int e = 0; e < num_experts_; ++e) {
      const auto& reps = layers_[l].replicas[e];
      p.logcnt(l, e) = static_cast<int32_t>(reps.size());
      for (size_t k = 0; k < reps.size(); ++k) p.log2phy(l, e * p.max_replicas + k) = reps[k];
    }
  }
  return p;
}

Mat ExpertParallel::RunRoutedExperts(int64_t moe_layer, const Mat& x,
                                     absl::Span<const int32_t> experts, int64_t top_k) {
  const LayerState& layer = layers_[moe_layer];
  const int64_t slots = static_cast<int64_t>(experts.size());
  std::vector<int64_t> busy(num_replicas_, 0);
  std::vector<std::vector<int64_t>> rows(num_replicas_);  // slots per replica
  for (int64_t i = 0; i < slots; ++i) {
    const int64_t token = i / top_k;
    const int home = static_cast<int>(token % options_.ep);
    const int32_t e = experts[i];
    ++step_loads_[moe_layer][e];
    int32_t chosen = -1;
    for (int32_t p : layer.replicas[e]) {  // a replica on the token's own rank first
      if (RankOf(p) == home && (chosen < 0 || busy[p] < busy[chosen])) chosen = p;
    }
    if (chosen < 0) {  // else the least busy, ties by a seeded hash
      uint64_t best_key = 0;
      for (int32_t p : layer.replicas[e]) {
        const uint64_t key = Mix(options_.seed ^ Mix((static_cast<uint64_t>(moe_layer) << 40) ^
                                                     (static_cast<uint64_t>(token) << 16) ^ p));
        if (chosen < 0 || busy[p] < busy[chosen] || (busy[p] == busy[chosen] && key < best_key)) {
          chosen = p;
          best_key = key;
        }
      }
    }
    ++busy[chosen];
    rows[chosen].push_back(i);
  }
  Mat out(slots, x.cols());
  const int per_rank = num_replicas_ / options_.ep;
  std::vector<int64_t> rank_tokens(options_.ep, 0);
  ranks_.ParallelFor(0, options_.ep, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      for (int p = static_cast<int>(r) * per_rank; p < (r + 1) * per_rank; ++p) {
        if (rows[p].empty()) continue;
        Mat in(static_cast<int64_t>(rows[p].size()), x.cols());
        for (size_t k = 0; k < rows[p].size(); ++k) in.row(k) = x.row(rows[p][k] / top_k);
        const Mat y = RunFfn(layer.weights[p].weights(), in, nullptr);
        for (size_t k = 0; k < rows[p].size(); ++k) out.row(rows[p][k]) = y.row(k);
        rank_tokens[r] += static_cast<int64_t>(rows[p].size());
      }
    }
  });
  for (int r = 0; r < options_.ep; ++r) stats_.rank_tokens[r] += rank_tokens[r];
  return out;
}

void ExpertParallel::StartNextLayer() {
  if (pending_.empty()) return;
  Move move = std::move(pending_.front());
  pending_.erase(pending_.begin());
  // The copy reads the layer's current replicas (which the step thread only reads until this
  // move is installed) and builds the new ones: replicas whose expert the rank already held are
  // copied on the rank, the others from the source rank.
  const LayerState* old = &layers_[move.layer];
  const int per_rank = num_replicas_ / options_.ep;
  copying_ = std::async(std::launch::async, [old, per_rank, move = std::move(move)]() mutable {
    LayerState& next = move.next;
    next.weights.resize(next.phy2log.size());
    for (size_t p = 0; p < next.phy2log.size(); ++p) {
      const int32_t e = next.phy2log[p];
      const int rank = static_cast<int>(p) / per_rank;
      int32_t source = old->replicas[e][0];
      for (int32_t q : old->replicas[e]) {
        if (q / per_rank == rank) {
          source = q;
          break;
        }
      }
      next.weights[p] = old->weights[source];
    }
    return std::move(move);
  });
}

absl::Status ExpertParallel::StartRebalance() {
  const eplb::Matrix<double> loads = tracker_->WindowSum();
  bool any = false;
  for (double v : loads.data()) any = any || v > 0;
  if (!any) return absl::OkStatus();
  steps_since_rebalance_ = 0;
  ASSIGN_OR_RETURN(eplb::Placement next, eplb::Rebalance(loads, num_replicas_, num_groups_, 1,
                                                         options_.ep, eplb::Policy::kRefined));
  ASSIGN_OR_RETURN(std::vector<eplb::ExpertCopy> copies,
                   eplb::DiffPlacements(CurrentPlacement(), next));
  rebalance_start_ = NowSeconds();
  for (size_t l = 0; l < layers_.size(); ++l) {
    const auto row = next.phy2log.row(static_cast<int>(l));
    if (std::equal(row.begin(), row.end(), layers_[l].phy2log.begin())) continue;
    Move move;
    move.layer = static_cast<int64_t>(l);
    move.next = LayerFromPhy2Log({row.begin(), row.end()}, num_experts_);
    for (const eplb::ExpertCopy& c : copies) move.copies += c.layer == static_cast<int>(l);
    pending_.push_back(std::move(move));
  }
  if (pending_.empty()) {
    ++stats_.rebalances;
    rebalance_seconds_.Observe(NowSeconds() - rebalance_start_);
    return absl::OkStatus();
  }
  StartNextLayer();
  return absl::OkStatus();
}

absl::Status ExpertParallel::EndStep() {
  const absl::Status status = EndStepUnpublished();
  absl::MutexLock lock(&published_mu_);
  published_ = stats_;
  published_.moving = copying_.valid();
  return status;
}

absl::Status ExpertParallel::EndStepUnpublished() {
  ++stats_.steps;
  ++steps_since_rebalance_;
  eplb::Matrix<double> counts(static_cast<int>(layers_.size()), num_experts_);
  for (size_t l = 0; l < layers_.size(); ++l) {
    for (int e = 0; e < num_experts_; ++e) {
      counts(static_cast<int>(l), e) = static_cast<double>(step_loads_[l][e]);
      step_loads_[l][e] = 0;
    }
  }
  RETURN_IF_ERROR(tracker_->Record(counts));
  if (copying_.valid()) {
    if (copying_.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      return absl::OkStatus();  // never wait for a copy
    }
    InstallCopied();
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(eplb::BalancednessReport report,
                   eplb::ComputeBalancedness(CurrentPlacement(), tracker_->WindowSum()));
  stats_.balancedness = report.per_layer;
  bool due = options_.eplb_interval > 0 && steps_since_rebalance_ >= options_.eplb_interval;
  if (options_.eplb_min_balancedness > 0 && steps_since_rebalance_ >= 1) {
    for (double b : report.per_layer) due = due || b < options_.eplb_min_balancedness;
  }
  if (due) return StartRebalance();
  return absl::OkStatus();
}

void ExpertParallel::InstallCopied() {
  Move move = copying_.get();
  const FfnWeights& w = model_.RoutedExpert(moe_layers_[move.layer], 0);
  const int64_t expert_bytes =
      static_cast<int64_t>((w.gate->size() + w.up->size() + w.down->size()) * sizeof(float));
  layers_[move.layer] = std::move(move.next);  // routing and weights switch together
  ++stats_.layers_moved;
  stats_.experts_copied += move.copies;
  stats_.bytes_moved += move.copies * expert_bytes;
  StartNextLayer();
  if (!copying_.valid()) {
    ++stats_.rebalances;
    rebalance_seconds_.Observe(NowSeconds() - rebalance_start_);
  }
}

void ExpertParallel::FinishMoves() {
  while (copying_.valid()) {
    copying_.wait();
    InstallCopied();
  }
  absl::MutexLock lock(&published_mu_);
  published_ = stats_;
}

EpStats ExpertParallel::Stats() const {
  absl::MutexLock lock(&published_mu_);
  return published_;
}

bool ExpertParallel::ReplicasMatchExperts() const {
  for (size_t l = 0; l < layers_.size(); ++l) {
    for (int p = 0; p < num_replicas_; ++p) {
      const FfnWeights& w = model_.RoutedExpert(moe_layers_[l], layers_[l].phy2log[p]);
      const Replica& r = layers_[l].weights[p];
      if (r.gate != *w.gate || r.up != *w.up || r.down != *w.down) return false;
    }
  }
  return true;
}

std::string ExpertParallel::Metrics() const {
  const EpStats s = Stats();
  std::vector<std::pair<std::string, double>> balancedness, ranks;
  for (size_t l = 0; l < s.balancedness.size(); ++l) {
    balancedness.push_back({absl::StrCat("layer=\"", moe_layers_[l], "\""), s.balancedness[l]});
  }
  for (size_t r = 0; r < s.rank_tokens.size(); ++r) {
    ranks.push_back({absl::StrCat("rank=\"", r, "\""), static_cast<double>(s.rank_tokens[r])});
  }
  return absl::StrCat(
      RenderSamples("dsmoe_eplb_balancedness", "gauge",
                    "Mean over max rank load of each MoE layer's placement, window loads.",
                    balancedness),
      RenderSamples("dsmoe_eplb_rebalances_total", "counter",
                    "Placements switched to (every layer in place).",
                    {{"", static_cast<double>(s.rebalances)}}),
      rebalance_seconds_.Render("dsmoe_eplb_rebalance_seconds",
                                "Time from a rebalance decision to its last layer's switch."),
      RenderSamples("dsmoe_eplb_expert_bytes_moved_total", "counter",
                    "Bytes of expert weights copied between EP ranks.",
                    {{"", static_cast<double>(s.bytes_moved)}}),
      RenderSamples("dsmoe_eplb_layers_moved_total", "counter", "MoE layer switches.",
                    {{"", static_cast<double>(s.layers_moved)}}),
      RenderSamples("dsmoe_eplb_rank_tokens_total", "counter",
                    "Routed tokens computed by each EP rank.", ranks));
}

}  // namespace serving
