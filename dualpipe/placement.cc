#include "dualpipe/placement.h"

#include <algorithm>
#include <vector>

namespace dualpipe {

int FirstMicrobatch(const Schedule& schedule, int route) {
  int first = 0;
  for (int r = 0; r < route; ++r) first += schedule.routes[r].num_microbatches;
  return first;
}

std::vector<HostedStage> HostedStages(const Schedule& schedule, int rank) {
  std::vector<HostedStage> hosted;
  for (int route = 0; route < static_cast<int>(schedule.routes.size()); ++route) {
    const Route& r = schedule.routes[route];
    for (int stage = 0; stage < static_cast<int>(r.hops.size()); ++stage) {
      if (r.hops[stage].rank != rank) continue;
      hosted.push_back(HostedStage{.path = r.hops[stage].path,
                                   .route = route,
                                   .stage = stage,
                                   .num_stages = static_cast<int>(r.hops.size()),
                                   .first_microbatch = FirstMicrobatch(schedule, route),
                                   .num_microbatches = r.num_microbatches});
    }
  }
  std::sort(hosted.begin(), hosted.end(),
            [](const HostedStage& a, const HostedStage& b) { return a.path < b.path; });
  return hosted;
}

}  // namespace dualpipe
