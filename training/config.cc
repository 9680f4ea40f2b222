#include "training/config.h"

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/status_macros.h"
#include "dualpipe/generate.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "model/config.h"

namespace training {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Collects the first text-format parse error as "line L: message".
class FirstError : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (error_.empty()) error_ = absl::StrCat("line ", line + 1, ": ", message);
  }
  const std::string& error() const { return error_; }

 private:
  std::string error_;
};

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Sets a singular or appends a repeated field from a text value.
absl::Status SetValue(Message& message, const FieldDescriptor* field, absl::string_view value,
                      absl::string_view path) {
  const Reflection* reflection = message.GetReflection();
  if (field->type() == FieldDescriptor::TYPE_STRING) {
    std::string text(value);
    if (text.size() >= 2 && (text.front() == '"' || text.front() == '\'') &&
        text.back() == text.front()) {
      text = text.substr(1, text.size() - 2);
    }
    if (field->is_repeated()) {
      reflection->AddString(&message, field, text);
    } else {
      reflection->SetString(&message, field, text);
    }
    return absl::OkStatus();
  }
  // On a repeated field this appends one element. Errors go to a collector, not to the log: the
  // message below says it in one line.
  google::protobuf::TextFormat::Parser parser;
  FirstError errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFieldValueFromString(std::string(value), field, &message)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--set ", path, ": '", value, "' is not a ", field->type_name()));
  }
  return absl::OkStatus();
}

absl::Status Positive(const char* field, double value) {
  if (!(value > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be positive, got ", value));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ApplyOverride(Message& message, absl::string_view assignment) {
  const size_t equals = assignment.find('=');
  if (equals == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--set ", assignment, ": expected field.path=value"));
  }
  const absl::string_view path = assignment.substr(0, equals);
  const absl::string_view value = assignment.substr(equals + 1);
  Message* target = &message;
  const std::vector<absl::string_view> names = absl::StrSplit(path, '.');
  for (size_t i = 0; i < names.size(); ++i) {
    const FieldDescriptor* field = target->GetDescriptor()->FindFieldByName(std::string(names[i]));
    if (field == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("--set ", path, ": ",
                                                     target->GetDescriptor()->full_name(),
                                                     " has no field '", names[i], "'"));
    }
    const bool last = i + 1 == names.size();
    if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
      if (last || field->is_repeated()) {
        return absl::InvalidArgumentError(absl::StrCat("--set ", path, ": '", names[i],
                                                       "' is a message, name one of its fields"));
      }
      target = target->GetReflection()->MutableMessage(target, field);
      continue;
    }
    if (!last) {
      return absl::InvalidArgumentError(
          absl::StrCat("--set ", path, ": '", names[i], "' has no fields"));
    }
    if (field->is_repeated()) {
      target->GetReflection()->ClearField(target, field);
      if (value.empty()) return absl::OkStatus();
      for (absl::string_view element : absl::StrSplit(value, ',')) {
        RETURN_IF_ERROR(SetValue(*target, field, element, path));
      }
      return absl::OkStatus();
    }
    return SetValue(*target, field, value, path);
  }
  return absl::OkStatus();
}

absl::StatusOr<TrainingConfig> LoadTrainingConfig(const std::string& path,
                                                  const std::vector<std::string>& overrides) {
  ASSIGN_OR_RETURN(const std::string text, ReadFile(path));
  TrainingConfig config;
  FirstError errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &config)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", errors.error()));
  }
  for (const std::string& assignment : overrides)
    RETURN_IF_ERROR(ApplyOverride(config, assignment));
  if (config.has_model() && !config.model_config().empty()) {
    return absl::InvalidArgumentError("set either model_config or model, not both");
  }
  if (!config.model_config().empty()) {
    absl::StatusOr<model::ModelConfig> model = model::LoadConfig(config.model_config());
    if (!model.ok()) {
      return absl::Status(model.status().code(),
                          absl::StrCat("model_config: ", model.status().message()));
    }
    *config.mutable_model() = *std::move(model);
  }
  RETURN_IF_ERROR(ValidateTrainingConfig(config));
  return config;
}

int NumModelStages(const TrainingConfig& config) {
  const std::string& schedule = config.parallel().schedule();
  return schedule == "dualpipev" || schedule == "zbv" ? 2 * config.parallel().pp()
                                                      : config.parallel().pp();
}

std::vector<std::pair<int, int>> StageLayerRanges(const TrainingConfig& config) {
  const int stages = NumModelStages(config);
  std::vector<std::pair<int, int>> ranges;
  int begin = 0;
  for (int s = 0; s < stages; ++s) {
    const int layers = config.parallel().stage_layers().empty()
                           ? config.model().num_layers() / stages
                           : config.parallel().stage_layers(s);
    ranges.emplace_back(begin, begin + layers);
    begin += layers;
  }
  return ranges;
}

absl::Status ValidateTrainingConfig(const TrainingConfig& config) {
  if (!config.has_model()) return absl::InvalidArgumentError("no model: set model_config or model");
  if (absl::Status status = model::ValidateConfig(config.model()); !status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("model: ", status.message()));
  }
  const model::ModelConfig& model = config.model();
  const ParallelConfig& parallel = config.parallel();
  static const std::set<std::string> kSchedules = {"dualpipe", "dualpipev", "1f1b", "zb1p", "zbv"};
  if (kSchedules.count(parallel.schedule()) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("parallel.schedule must be dualpipe, dualpipev, 1f1b, zb1p or zbv, got '",
                     parallel.schedule(), "'"));
  }
  for (const auto& [name, value] :
       {std::pair<const char*, int>{"parallel.pp", parallel.pp()},
        {"parallel.ep", parallel.ep()},
        {"parallel.dp", parallel.dp()},
        {"parallel.microbatches", parallel.microbatches()},
        {"parallel.sequences_per_microbatch", parallel.sequences_per_microbatch()},
        {"steps", config.steps()},
        {"data.seq_len", config.data().seq_len()}}) {
    if (value < 1) {
      return absl::InvalidArgumentError(absl::StrCat(name, " must be >= 1, got ", value));
    }
  }
  if (absl::StatusOr<dualpipe::Schedule> schedule =
          dualpipe::GenerateSchedule(parallel.schedule(), parallel.pp(), parallel.microbatches());
      !schedule.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("parallel: ", schedule.status().message()));
  }
  const int stages = NumModelStages(config);
  if (!parallel.stage_layers().empty()) {
    int sum = 0;
    for (int layers : parallel.stage_layers()) {
      if (layers < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("parallel.stage_layers: every stage needs a layer, got ", layers));
      }
      sum += layers;
    }
    if (parallel.stage_layers_size() != stages || sum != model.num_layers()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "parallel.stage_layers: ", parallel.stage_layers_size(), " entries summing to ", sum,
          ", the run has ", stages, " model stages (", parallel.schedule(),
          " over pp=", parallel.pp(), ") and the model ", model.num_layers(), " layers"));
    }
  } else if (model.num_layers() % stages != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("parallel.pp: ", stages, " model stages (", parallel.schedule(),
                     " over pp=", parallel.pp(), ") do not divide the model's ", model.num_layers(),
                     " layers (parallel.stage_layers can split them unevenly)"));
  }
  const bool has_moe = model.first_k_dense_layers() < model.num_layers();
  if (has_moe && model.moe().num_routed_experts() % parallel.ep() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("parallel.ep: ", parallel.ep(), " does not divide the model's ",
                     model.moe().num_routed_experts(), " routed experts"));
  }
  if (!has_moe && parallel.ep() != 1) {
    return absl::InvalidArgumentError("parallel.ep must be 1 for a model without MoE layers");
  }
  if (config.data().seq_len() > model.max_seq_len()) {
    return absl::InvalidArgumentError(absl::StrCat("data.seq_len ", config.data().seq_len(),
                                                   " exceeds the model's max_seq_len ",
                                                   model.max_seq_len()));
  }
  if (config.data().corpus().empty()) {
    return absl::InvalidArgumentError("data.corpus: name at least one file, folder or glob");
  }
  if (config.data().tokenizer().empty() && config.data().tokenizer_vocab_size() < 261) {
    return absl::InvalidArgumentError(
        "data.tokenizer_vocab_size must be >= 261 when no data.tokenizer is given");
  }
  if (config.data().validation_fraction() < 0 || config.data().validation_fraction() >= 1) {
    return absl::InvalidArgumentError("data.validation_fraction must be in [0, 1)");
  }
  const OptimizerConfig& optimizer = config.optimizer();
  RETURN_IF_ERROR(Positive("optimizer.lr", optimizer.lr()));
  RETURN_IF_ERROR(Positive("optimizer.eps", optimizer.eps()));
  if (optimizer.min_lr() < 0 || optimizer.min_lr() > optimizer.lr()) {
    return absl::InvalidArgumentError("optimizer.min_lr must be in [0, lr]");
  }
  for (const auto& [name, beta] :
       {std::pair<const char*, double>{"optimizer.beta1", optimizer.beta1()},
        {"optimizer.beta2", optimizer.beta2()}}) {
    if (beta < 0 || beta >= 1) {
      return absl::InvalidArgumentError(absl::StrCat(name, " must be in [0, 1), got ", beta));
    }
  }
  if (optimizer.weight_decay() < 0 || optimizer.clip_grad_norm() < 0 ||
      optimizer.warmup_steps() < 0) {
    return absl::InvalidArgumentError(
        "optimizer.weight_decay, clip_grad_norm and warmup_steps must be >= 0");
  }
  static const std::set<std::string> kDecays = {"cosine", "linear", "constant"};
  if (kDecays.count(optimizer.decay()) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer.decay must be cosine, linear or constant, got '", optimizer.decay(), "'"));
  }
  if (config.checkpoint().every_steps() < 0 || config.checkpoint().keep() < 0 ||
      config.logging().log_every() < 0 || config.logging().eval_every() < 0 ||
      config.logging().eval_microbatches() < 0 || config.logging().expert_loads_every() < 0) {
    return absl::InvalidArgumentError("checkpoint.* and logging.* must be >= 0");
  }
  return absl::OkStatus();
}

}  // namespace training
