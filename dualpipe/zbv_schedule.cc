#include "dualpipe/zbv_schedule.h"

#include <algorithm>
#include <array>
#include <deque>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dualpipe {
namespace {

// Op categories of the heuristic. In its numbering a backward's chunk is counted from the loss:
// backward chunk 0 is the backward of forward chunk 1 (the way back), and vice versa.
constexpr int kF = 0;
constexpr int kB = 1;
constexpr int kW = 2;

struct Placed {
  int category;
  int chunk;
  int microbatch;
};

struct Attempt {
  std::vector<std::vector<Placed>> order;  // [rank]
  std::vector<double> stage_bubble;        // [rank]
  double max_bubble = 0;
};

// One run of the reference's try_v_schedule: a greedy sweep that places ops rank by rank while
// tracking each rank's clock, memory and idle time.
class VSweep {
 public:
  VSweep(int n, int m, const OpCosts& costs, bool fill_f, bool fill_b,
         const std::vector<double>& approved)
      : n_(n),
        m_(m),
        cost_{costs.forward, costs.backward - costs.weight, costs.weight},
        c_(costs.p2p_latency),
        fill_f_(fill_f),
        fill_b_(fill_b),
        approved_(approved),
        max_approved_(*std::max_element(approved.begin(), approved.end())),
        count_(n, std::array<int, 6>{}),
        end_time_(6 * n * m, -1),
        cur_time_(n, 0),
        mem_(n, 0),
        pending_w_(n) {
    attempt_.order.resize(n);
    attempt_.stage_bubble.assign(n, 0);
  }

  Attempt Run() && {
    WarmUp();
    for (int step = 0; step < 2 * m_; ++step) {
      PlaceBackwards();
      PlaceForwards();
    }
    for (int i = 0; i < n_; ++i) {
      while (!pending_w_[i].empty()) PutW(i);
    }
    attempt_.max_bubble = MaxStageBubble(-1);
    return std::move(attempt_);
  }

 private:
  static constexpr int kMemF = 2;
  static constexpr int kMemB = -1;
  static constexpr int kMemW = -1;
  static constexpr int kMem[3] = {kMemF, kMemB, kMemW};

  int Id(int category, int chunk, int stage, int micro) const {
    return category * 2 * n_ * m_ + chunk * n_ * m_ + stage * m_ + micro;
  }
  int MaxMem() const { return kMemF * n_ * 2; }

  double MaxStageBubble(int stage) const {
    double best = 0;
    for (double b : attempt_.stage_bubble) best = std::max(best, b);
    if (stage >= 0) best = std::max(best, max_approved_ - approved_[stage]);
    return best;
  }

  void Put(int category, int chunk, int stage) {
    const double no_bubble = cur_time_[stage] + cost_[category];
    double end = no_bubble;
    const int micro = count_[stage][category * 2 + chunk];
    if (category < 2 && chunk == 1 && stage < n_ - 1) {
      end = std::max(end, end_time_[Id(category, chunk, stage + 1, micro)] + c_ + cost_[category]);
    }
    if (category < 2 && chunk == 0 && stage > 0) {
      end = std::max(end, end_time_[Id(category, chunk, stage - 1, micro)] + c_ + cost_[category]);
    }
    if (count_[stage][0] > 0) attempt_.stage_bubble[stage] += end - no_bubble;
    end_time_[Id(category, chunk, stage, micro)] = end;
    cur_time_[stage] = end;
    mem_[stage] += kMem[category];
    attempt_.order[stage].push_back(Placed{category, chunk, micro});
    if (category == kB) pending_w_[stage].push_back(chunk);
    ++count_[stage][category * 2 + chunk];
  }

  void PutW(int stage) {
    const int chunk = pending_w_[stage].front();
    pending_w_[stage].pop_front();
    Put(kW, chunk, stage);
  }

  // The reference's start: the first forward on every rank, the turn of the V from the last rank
  // back up with extra chunk-0 forwards where they fit, then chunk-alternating forwards until each
  // rank has caught up with the one above.
  void WarmUp() {
    for (int i = 0; i < n_; ++i) Put(kF, 0, i);
    for (int i = n_ - 1; i >= 0; --i) {
      if (i == n_ - 1) {
        Put(kF, 1, i);
        continue;
      }
      const double limit = end_time_[Id(kF, 1, i + 1, 0)] + c_;
      while (mem_[i] + kMemF * (2 + i * 2) <= MaxMem() && cur_time_[i] + cost_[kF] <= limit &&
             count_[i][0] < m_) {
        for (int j = 0; j <= i; ++j) Put(kF, 0, j);
      }
      Put(kF, 1, i);
    }
    int chunk = 0;
    for (int i = 1; i < n_; ++i) {
      while (count_[i][0] + count_[i][1] < count_[i - 1][0] + count_[i - 1][1] ||
             (count_[i][1] <= count_[i - 1][1] && count_[i - 1][1] < m_)) {
        for (int j = n_ - 1; j >= i; --j) {
          if (count_[j][chunk] < m_) Put(kF, chunk, j);
        }
        chunk = 1 - chunk;
      }
    }
  }

  // Runs pending W's while they fit before the input of the next op at `rank` can arrive, and one
  // more if waiting would exceed the idle time other ranks already have. `fa` is that input's id.
  void FillWithWeights(int rank, int fa, bool fill_extra) {
    while (!pending_w_[rank].empty() && fa >= 0 &&
           end_time_[fa] + c_ >= cur_time_[rank] + cost_[kW]) {
      PutW(rank);
    }
    const double fa_end = fa >= 0 ? end_time_[fa] : end_time_.back();
    if (!pending_w_[rank].empty() &&
        fa_end + c_ - cur_time_[rank] > MaxStageBubble(rank) - attempt_.stage_bubble[rank] &&
        fill_extra) {
      PutW(rank);
    }
  }

  void PlaceBackwards() {
    for (int i = 0; i < n_; ++i) {
      while (mem_[i] + kMemB > MaxMem()) PutW(i);
    }
    std::vector<int> b0_ranks, b1_ranks;
    for (int i = 0; i < n_; ++i) {
      if (count_[i][3] >= count_[i][2]) {
        b0_ranks.push_back(i);
      } else if (i == n_ - 1) {
        b1_ranks.push_back(i);
      } else if (end_time_[Id(kB, 1, i + 1, count_[i][3])] >= 0 || count_[i][2] >= m_) {
        b1_ranks.push_back(i);
      } else {
        b0_ranks.push_back(i);
      }
    }
    std::vector<std::pair<int, int>> order;
    for (auto it = b1_ranks.rbegin(); it != b1_ranks.rend(); ++it) order.push_back({*it, 1});
    for (int i : b0_ranks) order.push_back({i, 0});
    for (const auto& [i, chunk] : order) {
      int fa = -1;
      if (chunk == 1 && i < n_ - 1) fa = Id(kB, 1, i + 1, count_[i][3]);
      if (chunk == 0 && i > 0) fa = Id(kB, 0, i - 1, count_[i][2]);
      FillWithWeights(i, fa, chunk == 1 || fill_b_);
      Put(kB, chunk, i);
    }
  }

  void PlaceForwards() {
    for (int i = 0; i < n_; ++i) {
      if (count_[i][1] >= m_) continue;
      int item = -1;
      if (count_[i][1] >= count_[i][0]) {
        item = 0;
      } else if (i == n_ - 1) {
        item = 1;
      } else if (end_time_[Id(kF, 1, i + 1, count_[i][1])] >= 0) {
        item = 1;
      } else if (count_[i][0] < m_ && (i == 0 || end_time_[Id(kF, 0, i - 1, count_[i][0])] >= 0)) {
        item = 0;
      }
      if (item < 0) continue;
      while (mem_[i] + kMemF > MaxMem()) PutW(i);
      int fa = -1;
      if (item == 0 && i > 0) fa = Id(kF, 0, i - 1, count_[i][0]);
      if (item == 1 && i < n_ - 1) fa = Id(kF, 1, i + 1, count_[i][1]);
      FillWithWeights(i, fa, fill_f_);
      Put(kF, item, i);
    }
  }

  const int n_;
  const int m_;
  const std::array<double, 3> cost_;
  const double c_;
  const bool fill_f_;
  const bool fill_b_;
  const std::vector<double> approved_;
  const double max_approved_;
  std::vector<std::array<int, 6>> count_;   // [rank][category * 2 + chunk] placed so far.
  std::vector<double> end_time_;            // By Id; -1 until placed.
  std::vector<double> cur_time_;            // [rank]
  std::vector<int> mem_;                    // [rank]
  std::vector<std::deque<int>> pending_w_;  // [rank] chunks of I's awaiting their W.
  Attempt attempt_;
};

// try_v_schedule with its refinement: re-run with the bubbles found as the approved ones while
// that lowers the worst-rank bubble.
Attempt TryVSchedule(int n, int m, const OpCosts& costs, bool fill_f, bool fill_b,
                     const std::vector<double>& approved) {
  Attempt attempt = VSweep(n, m, costs, fill_f, fill_b, approved).Run();
  const double max_approved = *std::max_element(approved.begin(), approved.end());
  if (max_approved < 0 || attempt.max_bubble < max_approved) {
    Attempt refined = TryVSchedule(n, m, costs, fill_f, fill_b, attempt.stage_bubble);
    if (refined.max_bubble < attempt.max_bubble) return refined;
  }
  return attempt;
}

}  // namespace

absl::StatusOr<Schedule> GenerateZBV(int num_devices, int num_microbatches, const OpCosts& costs) {
  if (num_devices < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("zbv needs ranks >= 1, got ranks=", num_devices));
  }
  if (num_microbatches < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("zbv needs micro-batches >= 1, got microbatches=", num_microbatches));
  }
  if (absl::Status status = ValidateCosts(costs); !status.ok()) return status;
  Attempt best;
  bool have_best = false;
  for (bool fill_b : {true, false}) {
    for (bool fill_f : {true, false}) {
      Attempt attempt = TryVSchedule(num_devices, num_microbatches, costs, fill_f, fill_b,
                                     std::vector<double>(num_devices, -1));
      if (!have_best || attempt.max_bubble < best.max_bubble) {
        best = std::move(attempt);
        have_best = true;
      }
    }
  }
  Schedule schedule;
  schedule.name = "zbv";
  schedule.num_ranks = num_devices;
  schedule.routes = {VRoute(num_devices, num_microbatches)};
  for (const std::vector<Placed>& rank_order : best.order) {
    std::vector<Op>& ops = schedule.ops.emplace_back();
    for (const Placed& p : rank_order) {
      if (p.category == kF) ops.push_back(Op::Forward(p.chunk, p.microbatch));
      if (p.category == kB) ops.push_back(Op::BackwardInput(1 - p.chunk, p.microbatch));
      if (p.category == kW) ops.push_back(Op::BackwardWeight(1 - p.chunk, p.microbatch));
    }
  }
  return schedule;
}

}  // namespace dualpipe
