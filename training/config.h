// Loading, overriding and validating a TrainingConfig (training/config.proto).
//
//   ASSIGN_OR_RETURN(training::TrainingConfig config,
//                    training::LoadTrainingConfig("training/configs/tiny_cpu.textproto",
//                                                 {"optimizer.lr=3e-3", "parallel.pp=4"}));
#ifndef TRAINING_CONFIG_H_
#define TRAINING_CONFIG_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "training/config.pb.h"

namespace training {

// Sets one field of `message` from "path.to.field=value": the path names nested message fields by
// their proto names; the value is in text format (numbers, true/false, a bare or quoted string);
// a repeated field takes a comma-separated list that replaces its elements. INVALID_ARGUMENT
// naming the path for an unknown field, a message-typed target or a value that does not parse.
absl::Status ApplyOverride(google::protobuf::Message& message, absl::string_view assignment);

// Reads the text-format config at `path` (unknown fields are an error naming the line), applies
// `overrides` in order, loads model_config into the inline model, and validates the result
// (ValidateTrainingConfig). NOT_FOUND if a file cannot be read; INVALID_ARGUMENT otherwise.
absl::StatusOr<TrainingConfig> LoadTrainingConfig(const std::string& path,
                                                  const std::vector<std::string>& overrides = {});

// Model stages of the run: 2 * pp for the V-shaped schedules (dualpipev, zbv), else pp.
int NumModelStages(const TrainingConfig& config);

// Layers [first, second) of each model stage: parallel.stage_layers when given, else an even split.
// Expects a config that passed ValidateTrainingConfig.
std::vector<std::pair<int, int>> StageLayerRanges(const TrainingConfig& config);

// OK if the config can run: the model config is valid, the schedule is known and accepts pp and
// the micro-batch count, the model stages divide the layers (or parallel.stage_layers splits them),
// ep divides the routed experts, seq_len fits the model, the optimizer's values are in range.
// INVALID_ARGUMENT naming the first bad field otherwise. Expects the model inline
// (LoadTrainingConfig resolves model_config).
absl::Status ValidateTrainingConfig(const TrainingConfig& config);

}  // namespace training

#endif  // TRAINING_CONFIG_H_
