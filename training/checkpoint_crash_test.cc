// Crash safety of checkpoints: the real `train` binary, writing a checkpoint after every step, is
// killed with SIGKILL at random moments, again and again, each run resuming from the checkpoint
// the last one left. After every kill the newest checkpoint (the one --resume picks) must be
// complete: every file present, every safetensors file parses, the index names exactly the model
// files' tensors, trainer_state.json and the configs parse, CheckResume accepts it; and the next
// run must resume from it. At the end a run resumes and finishes normally.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "model/safetensors.h"
#include "nlohmann/json.hpp"
#include "training/checkpoint.h"
#include "training/config.h"
#include "training/trainer.h"

namespace training {
namespace {
namespace fs = std::filesystem;

constexpr char kConfigPath[] = "training/testdata/tiny_moe.textproto";
// DualPipe over 2 pipeline x 2 expert ranks (4 threads), a checkpoint every step, the newest 3
// kept.
const std::vector<std::string> kOverrides = {"parallel.schedule=dualpipe",
                                             "parallel.pp=2",
                                             "parallel.ep=2",
                                             "parallel.microbatches=4",
                                             "checkpoint.every_steps=1",
                                             "checkpoint.keep=3",
                                             "logging.expert_loads_every=1"};

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Starts `train` with the test's config, `steps` and `resume`; output to `log`.
pid_t StartTrain(const std::string& output_dir, int steps, bool resume, const std::string& log) {
  std::vector<std::string> args = {"training/train", absl::StrCat("--config=", kConfigPath),
                                   absl::StrCat("--output_dir=", output_dir),
                                   absl::StrCat("--steps=", steps), "--peak_tflops=1"};
  for (const std::string& o : kOverrides) args.push_back(absl::StrCat("--set=", o));
  if (resume) args.push_back("--resume");
  const pid_t pid = fork();
  if (pid == 0) {
    std::FILE* out = std::freopen(log.c_str(), "a", stdout);
    if (out != nullptr) dup2(fileno(stdout), STDERR_FILENO);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// Every check of a complete checkpoint; adds failures naming what is wrong.
void ExpectComplete(const std::string& dir, int64_t step, const TrainingConfig& config) {
  SCOPED_TRACE(dir);
  std::set<std::string> model_tensors;
  std::map<std::string, std::string> file_of;
  for (int stage = 0; stage < 2; ++stage) {
    for (int ep = 0; ep < 2; ++ep) {
      for (const char* kind : {"model", "optimizer"}) {
        const std::string file = absl::StrCat(kind, "-stage", stage, "-ep", ep, ".safetensors");
        absl::StatusOr<model::SafetensorsFile> shard =
            model::ReadSafetensors((fs::path(dir) / file).string());
        ASSERT_TRUE(shard.ok()) << file << ": " << shard.status();
        ASSERT_FALSE(shard->tensors.empty()) << file;
        if (std::string(kind) == "model") {
          for (const auto& [name, tensor] : shard->tensors) file_of[name] = file;
        }
      }
    }
  }
  const nlohmann::json index = nlohmann::json::parse(
      ReadFile(fs::path(dir) / "model.safetensors.index.json"), nullptr, false);
  ASSERT_FALSE(index.is_discarded()) << "model.safetensors.index.json";
  ASSERT_TRUE(index.contains("weight_map"));
  std::map<std::string, std::string> weight_map;
  for (const auto& [name, file] : index["weight_map"].items()) weight_map[name] = file;
  EXPECT_EQ(weight_map, file_of) << "the index does not name the files' tensors";
  absl::StatusOr<TrainerState> state =
      TrainerState::FromJson(ReadFile(fs::path(dir) / "trainer_state.json"));
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->step, step);
  EXPECT_EQ(state->data_states.size(), 2u);
  absl::StatusOr<TrainingConfig> saved =
      LoadTrainingConfig((fs::path(dir) / "config.textproto").string());
  EXPECT_TRUE(saved.ok()) << saved.status();
  EXPECT_TRUE(absl::StrContains(ReadFile(fs::path(dir) / "model.textproto"), "test-moe"));
  EXPECT_TRUE(absl::StrContains(ReadFile(fs::path(dir) / "tokenizer.json"), "\"model\""));
  EXPECT_TRUE(CheckResume(config, fs::path(dir).parent_path().parent_path().string()).ok());
}

TEST(CheckpointCrashTest, NewestCheckpointSurvivesSigkill) {
  absl::StatusOr<TrainingConfig> config = LoadTrainingConfig(kConfigPath, kOverrides);
  ASSERT_TRUE(config.ok()) << config.status();
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string out = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/crash");
  fs::remove_all(out);
  const std::string log = out + ".log";
  const std::string checkpoints = out + "/checkpoints";
  // A first run of two steps builds the token cache and the first checkpoints.
  int status = 0;
  waitpid(StartTrain(out, 2, false, log), &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadFile(log);

  std::mt19937 random(std::random_device{}());
  const unsigned seed = random();
  random.seed(seed);
  std::printf("seed %u\n", seed);
  std::uniform_int_distribution<int> delay_ms(100, 1100);
  int64_t newest = 2;
  int trials = 0, mid_write = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(45);
  while (trials < 20 || (mid_write < 20 && std::chrono::steady_clock::now() < deadline)) {
    ++trials;
    const int delay = delay_ms(random);
    const pid_t pid = StartTrain(out, 100000, /*resume=*/true, log);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    // It must have been running (an early exit is a failed resume).
    ASSERT_TRUE(WIFSIGNALED(status))
        << "trial " << trials << ": exited with " << WEXITSTATUS(status) << "\n"
        << ReadFile(log);
    // Killed while writing: its temporary directory (named by its pid) is still there.
    bool writing = false;
    for (const fs::directory_entry& entry : fs::directory_iterator(checkpoints)) {
      if (absl::EndsWith(entry.path().filename().string(), absl::StrCat(".tmp-", pid))) {
        writing = true;
      }
    }
    mid_write += writing;
    absl::StatusOr<std::vector<std::pair<int64_t, std::string>>> found =
        ListCheckpoints(checkpoints);
    ASSERT_TRUE(found.ok() && !found->empty()) << found.status();
    const auto& [step, dir] = found->back();
    std::printf("trial %d: killed after %d ms%s; newest checkpoint step %lld\n", trials, delay,
                writing ? " while writing a checkpoint" : "", static_cast<long long>(step));
    ASSERT_GE(step, newest) << "a checkpoint was lost";
    newest = step;
    ExpectComplete(dir, step, *config);
    if (testing::Test::HasFailure()) return;
  }
  std::printf("%d trials, %d killed while a checkpoint was being written\n", trials, mid_write);
  EXPECT_GE(mid_write, 10);
  EXPECT_GT(newest, 2) << "no run got past its first step";
  // A last run resumes and finishes.
  waitpid(StartTrain(out, static_cast<int>(newest) + 2, /*resume=*/true, log), &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadFile(log);
  absl::StatusOr<std::vector<std::pair<int64_t, std::string>>> found = ListCheckpoints(checkpoints);
  ASSERT_TRUE(found.ok() && !found->empty());
  EXPECT_EQ(found->back().first, newest + 2);
  ExpectComplete(found->back().second, newest + 2, *config);
}

}  // namespace
}  // namespace training
