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

// The leader's messages to a worker: a header {command, moe layer, rows, 0} and its payload.
enum Command : int64_t { kRun = 1, kMove = 2, kStop = 3 };
constexpr int kTagHeader = 1, kTagCounts = 2, kTagRows = 3, kTagOut = 4, kTagPhy2Log = 5,
              kTagCopy = 100;

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
      comm_(options.comm),
      rank_(options.comm != nullptr ? options.comm->rank() : 0),
      moe_layers_(model.MoeLayers()),
      num_experts_(model.config().moe().num_routed_experts()),
      num_replicas_(num_experts_ + options.num_redundant_experts),
      num_groups_(model.config().moe().num_groups()),
      ranks_(options.comm != nullptr ? 1 : options.ep),
      rebalance_seconds_({0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60}) {}

ExpertParallel::~ExpertParallel() {
  FinishMoves();
  if (comm_ != nullptr && rank_ == 0) {
    std::vector<int64_t> stop = {kStop, 0, 0, 0};
    for (int r = 1; r < options_.ep; ++r) {
      (void)comm_->Send(comm::ConstHostBuffer<int64_t>(stop), r, kTagHeader);
    }
  }
}

absl::StatusOr<std::unique_ptr<ExpertParallel>> ExpertParallel::Create(
    const IncrementalModel& model, const EpOptions& options) {
  RETURN_IF_ERROR(options.Validate());
  if (model.MoeLayers().empty()) {
    return absl::InvalidArgumentError("--ep / --num_redundant_experts: the model has no MoE layer");
  }
  if (options.comm != nullptr && options.comm->size() != options.ep) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ep=", options.ep, " but the job has ", options.comm->size(), " ranks"));
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
  ASSIGN_OR_RETURN(ep->physical_tracker_,
                   eplb::LoadTracker::Create(layers, ep->num_replicas_, options.eplb_window, 0.9));
  ep->step_loads_.assign(layers, std::vector<int64_t>(ep->num_experts_, 0));
  ep->step_physical_.assign(layers, std::vector<int64_t>(ep->num_replicas_, 0));
  ep->stats_.rank_tokens.assign(options.ep, 0);
  if (options.placement_path == "trivial") {  // replica p holds expert p % experts
    for (int l = 0; l < layers; ++l) {
      std::vector<int32_t> phy2log(ep->num_replicas_);
      for (int p = 0; p < ep->num_replicas_; ++p) phy2log[p] = p % ep->num_experts_;
      ep->layers_.push_back(LayerFromPhy2Log(std::move(phy2log), ep->num_experts_));
    }
  } else if (!options.placement_path.empty()) {
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
  }
  if (!ep->layers_.empty()) {  // trivial or from JSON: the replicas' weights
    for (size_t l = 0; l < ep->layers_.size(); ++l) {
      LayerState& state = ep->layers_[l];
      for (int p = 0; p < ep->num_replicas_; ++p) {
        const FfnWeights& w = model.RoutedExpert(ep->moe_layers_[l], state.phy2log[p]);
        state.weights.push_back(ep->Owns(p) ? Replica{*w.gate, *w.up, *w.down} : Replica());
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
      state.weights.push_back(Owns(p) ? Replica{*w.gate, *w.up, *w.down} : Replica());
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

absl::StatusOr<Mat> ExpertParallel::RunRoutedExperts(int64_t moe_layer, const Mat& x,
                                                     absl::Span<const int32_t> experts,
                                                     int64_t top_k) {
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
  for (int p = 0; p < num_replicas_; ++p) {
    stats_.rank_tokens[RankOf(p)] += static_cast<int64_t>(rows[p].size());
    step_physical_[moe_layer][p] += static_cast<int64_t>(rows[p].size());
  }
  if (comm_ == nullptr) {
    ranks_.ParallelFor(0, options_.ep, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        RunLocal(layer, static_cast<int>(r), rows, x, top_k, &out);
    });
    return out;
  }
  // Ranks as processes: each worker gets {kRun, layer, rows}, its per-replica counts and the
  // rows, and returns their outputs; the leader computes its own replicas meanwhile.
  const int64_t hidden = x.cols();
  std::vector<std::vector<int64_t>> headers(options_.ep), counts(options_.ep);
  std::vector<Mat> in(options_.ep), back(options_.ep);
  std::vector<comm::SendOp> sends;
  std::vector<comm::RecvOp> recvs;
  for (int r = 1; r < options_.ep; ++r) {
    int64_t n = 0;
    for (int p = r * per_rank; p < (r + 1) * per_rank; ++p) {
      counts[r].push_back(static_cast<int64_t>(rows[p].size()));
      n += counts[r].back();
    }
    headers[r] = {kRun, moe_layer, n, 0};
    in[r].resize(n, hidden);
    back[r].resize(n, hidden);
    int64_t k = 0;
    for (int p = r * per_rank; p < (r + 1) * per_rank; ++p) {
      for (int64_t slot : rows[p]) in[r].row(k++) = x.row(slot / top_k);
    }
    sends.push_back({comm::ConstHostBuffer<int64_t>(headers[r]), r, kTagHeader});
    sends.push_back({comm::ConstHostBuffer<int64_t>(counts[r]), r, kTagCounts});
    if (n > 0) {
      sends.push_back(
          {comm::ConstBuffer(in[r].data(), in[r].size(), core::DType::kF32, core::Device::kHost), r,
           kTagRows});
      recvs.push_back({comm::Buffer{back[r].data(), static_cast<size_t>(back[r].size()),
                                    core::DType::kF32, core::Device::kHost},
                       r, kTagOut});
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<comm::Request> request, comm_->StartBatchP2P(sends, recvs));
  RunLocal(layer, 0, rows, x, top_k, &out);
  RETURN_IF_ERROR(request->Wait());
  for (int r = 1; r < options_.ep; ++r) {
    int64_t k = 0;
    for (int p = r * per_rank; p < (r + 1) * per_rank; ++p) {
      for (int64_t slot : rows[p]) out.row(slot) = back[r].row(k++);
    }
  }
  return out;
}

void ExpertParallel::RunLocal(const LayerState& layer, int rank,
                              const std::vector<std::vector<int64_t>>& rows, const Mat& x,
                              int64_t top_k, Mat* out) {
  const int per_rank = num_replicas_ / options_.ep;
  for (int p = rank * per_rank; p < (rank + 1) * per_rank; ++p) {
    if (rows[p].empty()) continue;
    Mat in(static_cast<int64_t>(rows[p].size()), x.cols());
    for (size_t k = 0; k < rows[p].size(); ++k) in.row(k) = x.row(rows[p][k] / top_k);
    const Mat y = RunFfn(layer.weights[p].weights(), in, nullptr);
    for (size_t k = 0; k < rows[p].size(); ++k) out->row(rows[p][k]) = y.row(k);
  }
}

absl::Status ExpertParallel::ServeWorker() {
  DSMOE_CHECK(comm_ != nullptr && rank_ != 0, "ServeWorker: not a worker rank");
  comm_->set_timeout(absl::Hours(24 * 365));  // idle between requests for as long as it takes
  const int per_rank = num_replicas_ / options_.ep;
  const int64_t hidden = model_.config().hidden_size();
  std::vector<int64_t> header(4), counts(per_rank);
  while (true) {
    RETURN_IF_ERROR(comm_->Recv(comm::HostBuffer<int64_t>(header), 0, kTagHeader));
    if (header[0] == kStop) return absl::OkStatus();
    if (header[0] == kMove) {
      std::vector<int32_t> phy2log(num_replicas_);
      RETURN_IF_ERROR(comm_->Recv(comm::HostBuffer<int32_t>(phy2log), 0, kTagPhy2Log));
      RETURN_IF_ERROR(ExchangeLayer(header[1], phy2log).status());
      continue;
    }
    if (header[0] != kRun) {
      return absl::InternalError(absl::StrCat("unknown command ", header[0], " from the leader"));
    }
    const LayerState& layer = layers_[header[1]];
    RETURN_IF_ERROR(comm_->Recv(comm::HostBuffer<int64_t>(counts), 0, kTagCounts));
    const int64_t n = header[2];
    if (n == 0) continue;
    Mat in(n, hidden), out(n, hidden);
    RETURN_IF_ERROR(comm_->Recv(comm::Buffer{in.data(), static_cast<size_t>(in.size()),
                                             core::DType::kF32, core::Device::kHost},
                                0, kTagRows));
    int64_t k = 0;
    for (int i = 0; i < per_rank; ++i) {
      if (counts[i] == 0) continue;
      const int p = rank_ * per_rank + i;
      out.middleRows(k, counts[i]) =
          RunFfn(layer.weights[p].weights(), in.middleRows(k, counts[i]), nullptr);
      k += counts[i];
    }
    RETURN_IF_ERROR(comm_->Send(
        comm::ConstBuffer(out.data(), out.size(), core::DType::kF32, core::Device::kHost), 0,
        kTagOut));
  }
}

absl::StatusOr<int64_t> ExpertParallel::ExchangeLayer(int64_t index,
                                                      const std::vector<int32_t>& phy2log) {
  const LayerState& old = layers_[index];
  LayerState next = LayerFromPhy2Log(phy2log, num_experts_);
  next.weights.resize(num_replicas_);
  const FfnWeights& shape = model_.RoutedExpert(moe_layers_[index], 0);
  const int64_t g = shape.gate->size(), u = shape.up->size(), d = shape.down->size();
  std::vector<std::vector<float>> out_buffers, in_buffers;
  std::vector<int32_t> incoming;
  out_buffers.reserve(num_replicas_);
  in_buffers.reserve(num_replicas_);
  std::vector<comm::SendOp> sends;
  std::vector<comm::RecvOp> recvs;
  int64_t copied = 0;
  for (int p = 0; p < num_replicas_; ++p) {
    const int32_t e = phy2log[p];
    const int dst = RankOf(p);
    int32_t local = -1;
    for (int32_t q : old.replicas[e]) {
      if (RankOf(q) == dst) {
        local = q;
        break;
      }
    }
    if (local >= 0) {  // the rank already holds the expert
      if (dst == rank_) next.weights[p] = old.weights[local];
      continue;
    }
    const int32_t q = old.replicas[e][0];
    const int src = RankOf(q);
    ++copied;
    if (src == rank_) {
      const Replica& r = old.weights[q];
      std::vector<float>& b = out_buffers.emplace_back(g + u + d);
      std::copy_n(r.gate.data(), g, b.data());
      std::copy_n(r.up.data(), u, b.data() + g);
      std::copy_n(r.down.data(), d, b.data() + g + u);
      sends.push_back({comm::ConstHostBuffer<float>(b), dst, kTagCopy + p});
    }
    if (dst == rank_) {
      std::vector<float>& b = in_buffers.emplace_back(g + u + d);
      recvs.push_back({comm::HostBuffer<float>(b), src, kTagCopy + p});
      incoming.push_back(p);
    }
  }
  RETURN_IF_ERROR(comm_->BatchP2P(sends, recvs));
  for (size_t i = 0; i < incoming.size(); ++i) {
    const std::vector<float>& b = in_buffers[i];
    Replica& r = next.weights[incoming[i]];
    r.gate = Eigen::Map<const Mat>(b.data(), shape.gate->rows(), shape.gate->cols());
    r.up = Eigen::Map<const Mat>(b.data() + g, shape.up->rows(), shape.up->cols());
    r.down = Eigen::Map<const Mat>(b.data() + g + u, shape.down->rows(), shape.down->cols());
  }
  layers_[index] = std::move(next);
  return copied;
}

absl::Status ExpertParallel::MoveLayerAcrossRanks(const Move& move) {
  std::vector<int64_t> header = {kMove, move.layer, 0, 0};
  for (int r = 1; r < options_.ep; ++r) {
    RETURN_IF_ERROR(comm_->Send(comm::ConstHostBuffer<int64_t>(header), r, kTagHeader));
    RETURN_IF_ERROR(comm_->Send(comm::ConstHostBuffer<int32_t>(move.next.phy2log), r, kTagPhy2Log));
  }
  ASSIGN_OR_RETURN(const int64_t copied, ExchangeLayer(move.layer, move.next.phy2log));
  const FfnWeights& w = model_.RoutedExpert(moe_layers_[move.layer], 0);
  ++stats_.layers_moved;
  stats_.experts_copied += copied;
  stats_.bytes_moved +=
      copied *
      static_cast<int64_t>((w.gate->size() + w.up->size() + w.down->size()) * sizeof(float));
  return absl::OkStatus();
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
  if (comm_ == nullptr) StartNextLayer();
  return absl::OkStatus();
}

absl::Status ExpertParallel::EndStep() {
  const absl::Status status = EndStepUnpublished();
  absl::MutexLock lock(&published_mu_);
  published_ = stats_;
  published_.moving = copying_.valid() || !pending_.empty();
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
  eplb::Matrix<double> physical(static_cast<int>(layers_.size()), num_replicas_);
  for (size_t l = 0; l < layers_.size(); ++l) {
    for (int p = 0; p < num_replicas_; ++p) {
      physical(static_cast<int>(l), p) = static_cast<double>(step_physical_[l][p]);
      step_physical_[l][p] = 0;
    }
  }
  RETURN_IF_ERROR(physical_tracker_->Record(physical));
  const eplb::Matrix<double> window = physical_tracker_->WindowSum();
  stats_.observed_balancedness.assign(layers_.size(), 1.0);
  for (size_t l = 0; l < layers_.size(); ++l) {
    std::vector<double> rank_loads(options_.ep, 0.0);
    for (int p = 0; p < num_replicas_; ++p) {
      rank_loads[RankOf(p)] += window(static_cast<int>(l), p);
    }
    stats_.observed_balancedness[l] = eplb::MeanOverMax(rank_loads);
  }
  if (comm_ != nullptr && !pending_.empty()) {  // one layer per step
    const Move move = std::move(pending_.front());
    pending_.erase(pending_.begin());
    RETURN_IF_ERROR(MoveLayerAcrossRanks(move));
    if (pending_.empty()) {
      ++stats_.rebalances;
      rebalance_seconds_.Observe(NowSeconds() - rebalance_start_);
    }
    return absl::OkStatus();
  }
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
  while (comm_ != nullptr && rank_ == 0 && !pending_.empty()) {
    const Move move = std::move(pending_.front());
    pending_.erase(pending_.begin());
    if (!MoveLayerAcrossRanks(move).ok()) {  // the ranks are gone (the step failed too)
      pending_.clear();
      break;
    }
    if (pending_.empty()) ++stats_.rebalances;
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
      if (!Owns(p)) continue;
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
  std::vector<std::pair<std::string, double>> observed;
  for (size_t l = 0; l < s.balancedness.size(); ++l) {
    balancedness.push_back({absl::StrCat("layer=\"", moe_layers_[l], "\""), s.balancedness[l]});
  }
  for (size_t l = 0; l < s.observed_balancedness.size(); ++l) {
    observed.push_back(
        {absl::StrCat("layer=\"", moe_layers_[l], "\""), s.observed_balancedness[l]});
  }
  for (size_t r = 0; r < s.rank_tokens.size(); ++r) {
    ranks.push_back({absl::StrCat("rank=\"", r, "\""), static_cast<double>(s.rank_tokens[r])});
  }
  return absl::StrCat(
      RenderSamples("dsmoe_eplb_balancedness", "gauge",
                    "Mean over max rank load of each MoE layer's placement, window loads.",
                    balancedness),
      RenderSamples("dsmoe_eplb_observed_balancedness", "gauge",
                    "Mean over max of the tokens each rank computed per MoE layer, window.",
                    observed),
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
